-- Return on ad spend by campaign under the Markov model (spend from CSVs dropped under spend/).
-- Answers: which paid campaigns pay for themselves.
SELECT
    COALESCE(campaign, '(not set)') AS campaign,
    channel,
    SUM(cost) AS cost,
    SUM(revenue_credited) AS revenue,
    SUM(revenue_credited) / NULLIF(SUM(cost), 0) AS roas,
    SUM(cost) / NULLIF(SUM(leads), 0) AS cost_per_lead,
    SUM(cost) / NULLIF(SUM(deals_won), 0) AS customer_acquisition_cost
FROM closedloop.channel_daily
WHERE model = 'markov'
GROUP BY COALESCE(campaign, '(not set)'), channel
HAVING SUM(cost) > 0
ORDER BY roas DESC, campaign
