-- Seed 001's lookup answers each latest result as its stored entry (`{"_id":…,"finishedDateTime":…}`),
-- which the projection now renders once when the result is recorded: a 500-vehicle lookup reads
-- two short columns and concatenates text. The table keeps its name and key; its rows are
-- rebuilt from the log (the projection starts again from position 0).
DROP TABLE rm_vehicle_checks;
CREATE TABLE rm_vehicle_checks (
    vehicle     TEXT   NOT NULL,
    resource_id BIGINT NOT NULL,
    entry       TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    PRIMARY KEY (vehicle, resource_id)
);
UPDATE projection_checkpoints SET position = 0 WHERE name = 'vehicle_checks';
