-- Several instances of the service on one database: exactly one of them (the lease holder) runs
-- the projections at a time. The holder renews its lease every second; when it stops renewing
-- (it died), another instance takes the lease over once `expires_at_ms` has passed.
CREATE TABLE projection_leases (
    name          TEXT   PRIMARY KEY,
    holder        TEXT   NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
