-- Revenue and open pipeline by channel under every model, side by side.
-- Answers: which channels bring revenue and fill the pipeline, and how much the answer depends on the model.
-- One column per model (revenue of won deals), then pipeline_<model> per model (amount of open deals).
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
    SUM(CASE WHEN model = 'j_shaped' THEN revenue_credit ELSE 0 END) AS j_shaped,
    SUM(CASE WHEN model = 'inverse_j_shaped' THEN revenue_credit ELSE 0 END) AS inverse_j_shaped,
    SUM(CASE WHEN model = 'markov' THEN revenue_credit ELSE 0 END) AS markov,
    SUM(CASE WHEN model = 'shapley' THEN revenue_credit ELSE 0 END) AS shapley,
    SUM(CASE WHEN model = 'first_touch' THEN pipeline_credit ELSE 0 END) AS pipeline_first_touch,
    SUM(CASE WHEN model = 'last_touch' THEN pipeline_credit ELSE 0 END) AS pipeline_last_touch,
    SUM(CASE WHEN model = 'last_non_direct' THEN pipeline_credit ELSE 0 END) AS pipeline_last_non_direct,
    SUM(CASE WHEN model = 'linear' THEN pipeline_credit ELSE 0 END) AS pipeline_linear,
    SUM(CASE WHEN model = 'time_decay' THEN pipeline_credit ELSE 0 END) AS pipeline_time_decay,
    SUM(CASE WHEN model = 'position_based' THEN pipeline_credit ELSE 0 END) AS pipeline_position_based,
    SUM(CASE WHEN model = 'w_shaped' THEN pipeline_credit ELSE 0 END) AS pipeline_w_shaped,
    SUM(CASE WHEN model = 'full_path' THEN pipeline_credit ELSE 0 END) AS pipeline_full_path,
    SUM(CASE WHEN model = 'j_shaped' THEN pipeline_credit ELSE 0 END) AS pipeline_j_shaped,
    SUM(CASE WHEN model = 'inverse_j_shaped' THEN pipeline_credit ELSE 0 END) AS pipeline_inverse_j_shaped,
    SUM(CASE WHEN model = 'markov' THEN pipeline_credit ELSE 0 END) AS pipeline_markov,
    SUM(CASE WHEN model = 'shapley' THEN pipeline_credit ELSE 0 END) AS pipeline_shapley
FROM closedloop.attribution_credits
GROUP BY channel
ORDER BY markov DESC, channel
