-- Open pipeline by stage and source (the latest snapshot), credited by the W-shaped model.
-- Answers: which sources fill which stages of the pipeline right now.
SELECT
    stage,
    channel,
    source,
    COUNT(DISTINCT deal_id) AS deals,
    SUM(pipeline_credit) AS pipeline_credited
FROM closedloop.pipeline
WHERE model = 'w_shaped'
  AND dt = (SELECT MAX(dt) FROM closedloop.pipeline)
GROUP BY stage, channel, source
ORDER BY stage, pipeline_credited DESC
