-- The funnel by the lead's source: visits -> leads -> opportunities -> customers, with conversion rates.
-- Visits are touches (sessions started) by channel. Leads, opportunities and customers are counted
-- by the lead's lead-creation channel (leads.lead_creation_channel), whole, never credited by a model:
-- opportunities are distinct leads with a deal (deals.lead_id, the deal's primary lead), customers
-- distinct leads with a won deal, so lead -> opportunity and opportunity -> customer never exceed 1.
-- Offline leads are the '(no web touch)' row, without visits. All time; for a period add the same
-- dt filter to touches and leads (leads by creation day; their deals are followed whenever they come).
WITH visits_by_channel AS (
    SELECT channel, COUNT(*) AS visits
    FROM closedloop.touches
    GROUP BY channel
),
lead_funnel AS (
    SELECT
        l.lead_creation_channel AS channel,
        COUNT(DISTINCT l.lead_id) AS leads,
        COUNT(DISTINCT d.lead_id) AS opportunities,
        COUNT(DISTINCT CASE WHEN d.lifecycle = 'won' THEN d.lead_id END) AS customers
    FROM closedloop.leads l
    LEFT JOIN closedloop.deals d
        ON d.lead_id = l.lead_id AND d.lifecycle <> 'deleted'
    GROUP BY l.lead_creation_channel
),
funnel AS (
    SELECT
        COALESCE(v.channel, f.channel) AS channel,
        COALESCE(v.visits, 0) AS visits,
        COALESCE(f.leads, 0) AS leads,
        COALESCE(f.opportunities, 0) AS opportunities,
        COALESCE(f.customers, 0) AS customers
    FROM visits_by_channel v
    FULL OUTER JOIN lead_funnel f ON f.channel = v.channel
)
SELECT
    channel,
    visits,
    leads,
    opportunities,
    customers,
    CAST(leads AS DOUBLE) / NULLIF(visits, 0) AS visit_to_lead,
    CAST(opportunities AS DOUBLE) / NULLIF(leads, 0) AS lead_to_opportunity,
    CAST(customers AS DOUBLE) / NULLIF(opportunities, 0) AS opportunity_to_customer
FROM funnel
ORDER BY visits DESC, leads DESC, channel
