-- First touch vs last touch vs data-driven revenue for the top campaigns.
-- Answers: which campaigns open journeys, which close them, and which really move conversion.
SELECT
    COALESCE(campaign, '(not set)') AS campaign,
    channel,
    SUM(CASE WHEN model = 'first_touch' THEN revenue_credit ELSE 0 END) AS first_touch,
    SUM(CASE WHEN model = 'last_touch' THEN revenue_credit ELSE 0 END) AS last_touch,
    SUM(CASE WHEN model = 'markov' THEN revenue_credit ELSE 0 END) AS markov,
    SUM(CASE WHEN model = 'shapley' THEN revenue_credit ELSE 0 END) AS shapley
FROM closedloop.attribution_credits
GROUP BY COALESCE(campaign, '(not set)'), channel
ORDER BY markov DESC, campaign
LIMIT 20
