-- Vehicle check results (seed 001): the latest result of each resource for each vehicle.
-- `vehicle` is `VIN-PLATE` (both are letters and digits only, so the hyphen is unambiguous): a
-- lookup of 500 vehicles is one `vehicle IN (…)` over the primary key's leading column.
-- `status` and `result` are the JSON text the resource sent; the date-times are its exact text.
CREATE TABLE rm_vehicle_checks (
    vehicle            TEXT   NOT NULL,
    resource_id        BIGINT NOT NULL,
    vin                TEXT   NOT NULL,
    plate              TEXT   NOT NULL,
    status             TEXT,
    result             TEXT   NOT NULL,
    creation_date_time TEXT   NOT NULL,
    finished_date_time TEXT,
    position           BIGINT NOT NULL,
    PRIMARY KEY (vehicle, resource_id)
);
