-- The operational "shop" database livefit learns from. Every table is REPLICA IDENTITY FULL so
-- Debezium's updates and deletes carry the full before-image.
CREATE TABLE IF NOT EXISTS customers (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    segment     text NOT NULL,
    region      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS products (
    id          bigint PRIMARY KEY,
    name        text NOT NULL,
    category    text NOT NULL,
    color       text NOT NULL,
    price       numeric(10, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS interactions (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL,
    product_id  bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('view', 'click', 'add_to_cart')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL,
    product_id  bigint NOT NULL,
    quantity    integer NOT NULL,
    amount      numeric(12, 2) NOT NULL,
    status      text NOT NULL DEFAULT 'new',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS interactions_created_at ON interactions (created_at);
CREATE INDEX IF NOT EXISTS orders_customer_product ON orders (customer_id, product_id, created_at);
ALTER TABLE customers REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;
ALTER TABLE interactions REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
