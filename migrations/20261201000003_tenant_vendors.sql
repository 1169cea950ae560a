-- The vendors each tenant has sent events for: what a tenant's key may see
-- of the breakers, which are shared by every tenant.

CREATE TABLE tenant_vendors (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    vendor      text NOT NULL,
    first_seen  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, vendor)
);

-- One statement-level trigger per insert into events: the pairs new to
-- the table are added once per statement, not once per row. The NOT EXISTS
-- skips pairs already recorded without taking a lock on them.
CREATE FUNCTION record_tenant_vendors() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenant_vendors (tenant_id, vendor, first_seen)
    SELECT DISTINCT ON (n.tenant_id, n.vendor) n.tenant_id, n.vendor, n.received_at
    FROM new n
    WHERE n.vendor IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM tenant_vendors tv
                      WHERE tv.tenant_id = n.tenant_id AND tv.vendor = n.vendor)
    ORDER BY n.tenant_id, n.vendor, n.received_at
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_tenant_vendors
    AFTER INSERT ON events
    REFERENCING NEW TABLE AS new
    FOR EACH STATEMENT EXECUTE FUNCTION record_tenant_vendors();

INSERT INTO tenant_vendors (tenant_id, vendor, first_seen)
SELECT tenant_id, vendor, min(received_at)
FROM events
WHERE vendor IS NOT NULL
GROUP BY tenant_id, vendor
ON CONFLICT DO NOTHING;
