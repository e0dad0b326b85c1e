-- A realistic production database: application roles with passwords, a database owned
-- by the application's owner role, settings at every level, extensions (one at an older
-- version than this server's default), row-level security naming a role, partitions, a
-- materialized view, a trigger, a large object, grants and default privileges, comments,
-- a publication, a subscription (never copied), and a table the superuser owns.
CREATE ROLE app_owner LOGIN PASSWORD 'owner-secret';
CREATE ROLE app_user LOGIN PASSWORD 'user-secret' CONNECTION LIMIT 20;
CREATE ROLE readonly NOLOGIN;
GRANT readonly TO app_user;
ALTER ROLE app_user SET statement_timeout = '30s';
CREATE DATABASE shop OWNER app_owner;
\c shop
REVOKE CONNECT, TEMPORARY ON DATABASE shop FROM PUBLIC;
GRANT CONNECT ON DATABASE shop TO app_user, readonly;
COMMENT ON DATABASE shop IS 'the shop';
ALTER DATABASE shop SET search_path = app, public;
ALTER DATABASE shop SET timezone = 'Asia/Tokyo';
ALTER ROLE app_user IN DATABASE shop SET work_mem = '8MB';
CREATE EXTENSION citext;
CREATE EXTENSION hstore VERSION '1.7';
CREATE EXTENSION pgcrypto;
CREATE EXTENSION pg_trgm;
SET ROLE app_owner;
CREATE SCHEMA app;
CREATE TABLE app.customers (id bigserial PRIMARY KEY, email citext UNIQUE, tenant int NOT NULL, attrs hstore, secret bytea);
COMMENT ON TABLE app.customers IS 'people who buy';
CREATE INDEX customers_email_trgm ON app.customers USING gin ((email::text) gin_trgm_ops);
ALTER TABLE app.customers ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON app.customers TO app_user USING (tenant = current_setting('app.tenant', true)::int);
CREATE TABLE app.orders (id bigserial, created date NOT NULL, total numeric) PARTITION BY RANGE (created);
CREATE TABLE app.orders_2025 PARTITION OF app.orders FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.orders_2026 PARTITION OF app.orders FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.total := coalesce(NEW.total, 0); RETURN NEW; END$$;
CREATE TRIGGER orders_touch BEFORE INSERT ON app.orders_2026 FOR EACH ROW EXECUTE FUNCTION app.touch();
GRANT USAGE ON SCHEMA app TO readonly, app_user;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO readonly;
GRANT SELECT, INSERT, UPDATE ON app.customers TO app_user;
GRANT USAGE ON SEQUENCE app.customers_id_seq TO app_user;
INSERT INTO app.customers (email, tenant, attrs, secret)
  SELECT 'u' || g || '@example.com', g % 3, 'tier=>gold', pgcrypto_fill.b
  FROM generate_series(1, 1000) g, LATERAL (SELECT public.digest(g::text, 'sha256') AS b) pgcrypto_fill;
INSERT INTO app.orders (created, total) SELECT date '2025-06-01' + g, g FROM generate_series(1, 400) g;
CREATE MATERIALIZED VIEW app.daily AS SELECT created, sum(total) AS total FROM app.orders GROUP BY 1;
SELECT lo_from_bytea(0, 'a large object body');
CREATE PUBLICATION app_changes FOR TABLE app.orders;
RESET ROLE;
CREATE TABLE public.su_owned (id int PRIMARY KEY);
INSERT INTO public.su_owned VALUES (1), (2);
CREATE SUBSCRIPTION upstream CONNECTION 'host=127.0.0.1 port=1 dbname=nowhere' PUBLICATION nothing WITH (connect = false);
