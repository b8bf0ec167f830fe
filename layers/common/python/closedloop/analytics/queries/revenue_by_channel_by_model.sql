-- Revenue and pipeline by channel under each model, side by side.
-- Answers: which channels bring revenue, and how much the answer depends on the model.
SELECT
    channel,
    SUM(CASE WHEN model = 'first_touch' THEN revenue_credit ELSE 0 END) AS first_touch,
    SUM(CASE WHEN model = 'last_touch' THEN revenue_credit ELSE 0 END) AS last_touch,
    SUM(CASE WHEN model = 'last_non_direct' THEN revenue_credit ELSE 0 END) AS last_non_direct,
    SUM(CASE WHEN model = 'linear' THEN revenue_credit ELSE 0 END) AS linear,
    SUM(CASE WHEN model = 'time_decay' THEN revenue_credit ELSE 0 END) AS time_decay,
    SUM(CASE WHEN model = 'position_based' THEN revenue_credit ELSE 0 END) AS position_based,
    SUM(CASE WHEN model = 'w_shaped' THEN revenue_credit ELSE 0 END) AS w_shaped,
    SUM(CASE WHEN model = 'full_path' THEN revenue_credit ELSE 0 END) AS full_path,
    SUM(CASE WHEN model = 'markov' THEN revenue_credit ELSE 0 END) AS markov,
    SUM(CASE WHEN model = 'shapley' THEN revenue_credit ELSE 0 END) AS shapley,
    SUM(CASE WHEN model = 'linear' THEN pipeline_credit ELSE 0 END) AS pipeline_linear
FROM closedloop.attribution_credits
GROUP BY channel
ORDER BY markov DESC, channel
