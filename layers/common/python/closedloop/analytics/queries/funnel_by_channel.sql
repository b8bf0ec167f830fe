-- The funnel by channel: visits -> leads -> opportunities -> customers, with conversion rates.
-- Leads, opportunities and customers are credited to channels by the linear model; change the model
-- in the WHERE clause to see the funnel under another one.
SELECT
    channel,
    SUM(visits) AS visits,
    SUM(leads) AS leads,
    SUM(opportunities) AS opportunities,
    SUM(deals_won) AS customers,
    SUM(leads) / NULLIF(CAST(SUM(visits) AS DOUBLE), 0) AS visit_to_lead,
    SUM(opportunities) / NULLIF(SUM(leads), 0) AS lead_to_opportunity,
    SUM(deals_won) / NULLIF(SUM(opportunities), 0) AS opportunity_to_customer
FROM closedloop.channel_daily
WHERE model = 'linear'
GROUP BY channel
ORDER BY visits DESC, channel
