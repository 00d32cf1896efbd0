-- Database objects of the pipeline. Safe to apply any number of times.
-- Applied by `make services-up` (local), by MySQL's first start in docker compose,
-- and by hand in the cloud: mysql -h ... -u admin -p < schema.sql

CREATE DATABASE IF NOT EXISTS coinbase CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

-- One row per trade ticker. Column names are Coinbase's ticker field names.
-- Money: DECIMAL(38,18), exact; the consumer rejects values that would not fit
-- (MariaDB would round extra digits with only a note). `time` is UTC.
CREATE TABLE IF NOT EXISTS coinbase.`order` (
    product_id      VARCHAR(32)      NOT NULL,
    sequence        BIGINT UNSIGNED  NOT NULL,
    trade_id        BIGINT UNSIGNED  NOT NULL,
    price           DECIMAL(38,18)   NOT NULL,
    side            ENUM('buy','sell') NOT NULL,
    last_size       DECIMAL(38,18)   NOT NULL,
    best_bid        DECIMAL(38,18)   NOT NULL,
    best_bid_size   DECIMAL(38,18)   NULL,      -- missing in older captures
    best_ask        DECIMAL(38,18)   NOT NULL,
    best_ask_size   DECIMAL(38,18)   NULL,      -- missing in older captures
    open_24h        DECIMAL(38,18)   NOT NULL,
    volume_24h      DECIMAL(38,18)   NOT NULL,
    low_24h         DECIMAL(38,18)   NOT NULL,
    high_24h        DECIMAL(38,18)   NOT NULL,
    volume_30d      DECIMAL(38,18)   NOT NULL,
    time            DATETIME(6)      NOT NULL,  -- trade time, UTC, truncated to microseconds
    received_at     DATETIME(6)      NULL,      -- producer's receive time, UTC
    kafka_partition INT UNSIGNED     NOT NULL,
    kafka_offset    BIGINT UNSIGNED  NOT NULL,
    inserted_at     DATETIME(6)      NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    -- The only unique key, so an insert can collide on nothing else.
    PRIMARY KEY (product_id, sequence),
    KEY order_product_time (product_id, time)
) ENGINE=InnoDB;

-- One row per trade of the `matches` channel (or of the REST history that repairs a hole):
-- the complete tape. Column names are Coinbase's; `side` is the maker's, as Coinbase reports
-- it. Per product `trade_id` rises by exactly 1, so a stored range without a hole is complete.
CREATE TABLE IF NOT EXISTS coinbase.`trade` (
    product_id      VARCHAR(32)      NOT NULL,
    trade_id        BIGINT UNSIGNED  NOT NULL,
    side            ENUM('buy','sell') NOT NULL,
    price           DECIMAL(38,18)   NOT NULL,
    size            DECIMAL(38,18)   NOT NULL,
    time            DATETIME(6)      NOT NULL,  -- UTC, truncated to microseconds
    sequence        BIGINT UNSIGNED  NULL,      -- NULL when from REST
    maker_order_id  VARCHAR(64)      NULL,      -- NULL when from REST
    taker_order_id  VARCHAR(64)      NULL,      -- NULL when from REST
    source          ENUM('ws','rest') NOT NULL,
    received_at     DATETIME(6)      NULL,      -- producer's (or repair's) receive time, UTC
    kafka_partition INT UNSIGNED     NOT NULL,
    kafka_offset    BIGINT UNSIGNED  NOT NULL,
    inserted_at     DATETIME(6)      NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    -- The only unique key: a trade from the feed and again from REST is one row (first wins).
    PRIMARY KEY (product_id, trade_id),
    KEY trade_product_time (product_id, time)
) ENGINE=InnoDB;

-- Least privilege for the writer: it inserts and reads, nothing else.
-- The password here is for local runs only; set a real one in the cloud:
--   ALTER USER 'ticker_writer'@'%' IDENTIFIED BY '...';
CREATE USER IF NOT EXISTS 'ticker_writer'@'%' IDENTIFIED BY 'ticker_writer';
GRANT SELECT, INSERT ON coinbase.`order` TO 'ticker_writer'@'%';
GRANT SELECT, INSERT ON coinbase.`trade` TO 'ticker_writer'@'%';

-- Analysis API (analysis/): one covering index serves candles, stats, the ticker and the
-- largest trades. Its leaf entries carry (product_id, time, price, last_size) plus the
-- primary key's sequence, so a time range of one product is read from the index alone.
-- Added through information_schema so that applying this file again, on MariaDB or on
-- MySQL (which has no CREATE INDEX IF NOT EXISTS), is harmless.
SET @analysis_index = (
    SELECT IF(COUNT(*) = 0,
              'ALTER TABLE coinbase.`order` ADD INDEX order_product_time_price_size (product_id, time, price, last_size)',
              'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = 'coinbase' AND table_name = 'order'
      AND index_name = 'order_product_time_price_size');
PREPARE analysis_index FROM @analysis_index;
EXECUTE analysis_index;
DEALLOCATE PREPARE analysis_index;

-- The same for the trade tape: candles from `trade` read (product_id, time, price, size) plus
-- the primary key's trade_id (bucket id ranges, open/close ties) from this index alone.
SET @analysis_trade_index = (
    SELECT IF(COUNT(*) = 0,
              'ALTER TABLE coinbase.`trade` ADD INDEX trade_product_time_price_size (product_id, time, price, size)',
              'DO 0')
    FROM information_schema.statistics
    WHERE table_schema = 'coinbase' AND table_name = 'trade'
      AND index_name = 'trade_product_time_price_size');
PREPARE analysis_trade_index FROM @analysis_trade_index;
EXECUTE analysis_trade_index;
DEALLOCATE PREPARE analysis_trade_index;

-- The analysis service reads and nothing else. Local password as above; set a real one:
--   ALTER USER 'ticker_reader'@'%' IDENTIFIED BY '...';
CREATE USER IF NOT EXISTS 'ticker_reader'@'%' IDENTIFIED BY 'ticker_reader';
GRANT SELECT ON coinbase.`order` TO 'ticker_reader'@'%';
GRANT SELECT ON coinbase.`trade` TO 'ticker_reader'@'%';
