-- SQLite only (PostgreSQL has no clustered tables; its lookups are index scans already).
-- Seed 001's lookup reads each vehicle's rows by the primary key's leading column. In a rowid
-- table every row was found twice, in the key's index and then in the table by rowid (a quarter
-- of a 500-vehicle lookup's time, profiled); a table WITHOUT ROWID is stored in its primary key's
-- order, so each row is found once. Same columns, same key, same rows.
CREATE TABLE rm_vehicle_checks_clustered (
    vehicle     TEXT    NOT NULL,
    resource_id INTEGER NOT NULL,
    entry       TEXT    NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (vehicle, resource_id)
) WITHOUT ROWID;
INSERT INTO rm_vehicle_checks_clustered (vehicle, resource_id, entry, position)
    SELECT vehicle, resource_id, entry, position FROM rm_vehicle_checks;
DROP TABLE rm_vehicle_checks;
ALTER TABLE rm_vehicle_checks_clustered RENAME TO rm_vehicle_checks;
