-- The change feed (issue #16): every change of a product as this device shows it takes the next
-- `feed_seq`, so the feed reads what changed since it last looked instead of every product.
ALTER TABLE products ADD COLUMN feed_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX products_by_feed_seq ON products (feed_seq);

CREATE TABLE feed_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL CHECK (value >= 0)
);
INSERT INTO feed_counter VALUES (1, 0);

CREATE TRIGGER products_feed_insert AFTER INSERT ON products
BEGIN
    UPDATE feed_counter SET value = value + 1 WHERE id = 1;
    UPDATE products SET feed_seq = (SELECT value FROM feed_counter WHERE id = 1) WHERE sku = NEW.sku;
END;

CREATE TRIGGER products_feed_update AFTER UPDATE OF name, price_cents, stock, version ON products
WHEN OLD.name IS NOT NEW.name OR OLD.price_cents IS NOT NEW.price_cents
  OR OLD.stock IS NOT NEW.stock OR OLD.version IS NOT NEW.version
BEGIN
    UPDATE feed_counter SET value = value + 1 WHERE id = 1;
    UPDATE products SET feed_seq = (SELECT value FROM feed_counter WHERE id = 1) WHERE sku = NEW.sku;
END;
