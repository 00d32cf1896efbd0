"""The FastAPI application: routes, error answers, metrics. Queries live in queries.py."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import pymysql
from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from analysis import candle_sources, completeness, queries, tape_queries
from analysis.counts import TickCounts
from analysis.db import Database, PoolTimeout, timed_out
from analysis.formats import candles_json, decimal_text, iso_time, product_text
from analysis.metrics import MetricsMiddleware
from analysis.params import ApiError, candle_range, time_window, utc_now
from analysis.schemas import (
    Completeness,
    Gap,
    Message,
    Product,
    Stats,
    TapeTrade,
    Ticker,
    Trade,
)
from analysis.settings import AnalysisSettings
from shared.logs import get_logger

STATIC = Path(__file__).resolve().parent / "static"
log = get_logger("analysis")

VOLUME_CAVEAT = (
    "**Volume caveat.** Coinbase's ticker channel reports only the last match of a batch "
    "(`last_size`), so a volume summed from ticks undercounts when matches are batched. "
    "Candles therefore come from the trade tape (table `trade`, every match) for each bucket "
    "the tape covers: a stored trade before and after the bucket, and no trade id missing "
    "between them; their volume is exact. Other buckets (holes, before the tape began, the "
    "live bucket) and /stats and /trades/largest sum `last_size`; `volume` of /ticker is "
    "Coinbase's own `volume_24h`."
)
DESCRIPTION = (
    "Read-only market data over the stored ticker archive (table `order`) and trade tape "
    "(table `trade`), shaped like "
    "Coinbase Exchange's public REST market data. Decimals are the stored digits: strings, "
    "except in candles, whose JSON numbers carry the exact digits (never through a float). "
    "Times are ISO-8601 UTC with `Z`; candle times are Unix seconds.\n\n" + VOLUME_CAVEAT
)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Message, "description": "a bad parameter, with the reason"},
    404: {"model": Message, "description": "unknown product"},
    422: {"model": Message, "description": "a parameter of the wrong type or range"},
}
ProductId = Annotated[str, PathParam(max_length=32, examples=["BTC-USD"])]


def require_product(db: Database, product: str) -> None:
    """404 unless the product has a tick or a trade."""
    if queries.exists(db, product):
        return
    if not (db.tape and tape_queries.exists(db, product)):
        raise ApiError(404, f"unknown product {product!r}")


def create_app(settings: AnalysisSettings, db: Database) -> FastAPI:
    app = FastAPI(
        title="Coinbase ticker archive: analysis API", description=DESCRIPTION, version="1.0"
    )
    app.add_middleware(MetricsMiddleware)
    counts = TickCounts(db, settings.analysis_count_cache_s)
    add_error_handlers(app)

    @app.get("/products", response_model=list[Product])
    def list_products() -> list[Product]:
        """The products stored, with their first and last tick times and row count."""
        return [
            Product(
                id=product,
                first_time=iso_time(first),
                last_time=iso_time(last),
                ticks=counts.get(product),
            )
            for product, first, last in queries.products(db)
        ]

    @app.get(
        "/products/{product_id}/candles",
        responses={
            200: {
                "description": "`[[time, low, high, open, close, volume], ...]`, newest first; "
                "time is the bucket start in Unix seconds. " + VOLUME_CAVEAT,
                "content": {
                    "application/json": {
                        "example": [[1764410400, 84000.1, 84010.5, 84001.23, 84005, 1.50012345]]
                    }
                },
            },
            **ERRORS,
        },
    )
    def candles(
        product_id: ProductId,
        granularity: int = Query(60, description="seconds: 60, 300, 900, 3600, 21600, 86400"),
        start: str | None = Query(None, description="ISO-8601 (or Unix seconds); with end"),
        end: str | None = Query(None, description="ISO-8601 (or Unix seconds); with start"),
    ) -> Response:
        """OHLCV buckets: from the trade tape where it covers the bucket (open/close by
        (time, trade_id), volume = sum of trade sizes), else from the ticks (open/close by
        (time, sequence)); empty buckets omitted; at most 300 buckets; without start/end the
        latest 300 up to now. Header `X-Candle-Sources` counts the buckets of each source."""
        span = candle_range(granularity, start, end)
        found = candle_sources.candles(db, product_id, span, db.tape)
        if not found.rows:
            require_product(db, product_id)
        sources = f"trade={found.from_trades}, order={found.from_ticks}"
        return Response(
            candles_json(found.rows),
            media_type="application/json",
            headers={"X-Candle-Sources": sources},
        )

    @app.get("/products/{product_id}/trades", response_model=list[TapeTrade], responses=ERRORS)
    def trades(
        product_id: ProductId,
        response: Response,
        limit: int = Query(1000, ge=1, le=1000),
        before: int | None = Query(None, ge=0, description="newer than this trade id"),
        after: int | None = Query(None, ge=0, description="older than this trade id"),
    ) -> list[TapeTrade]:
        """The stored trades, newest first by trade id, as Coinbase pages them: `after=X`
        the page just older than X, `before=X` the page just newer. Headers `CB-BEFORE` /
        `CB-AFTER` carry the newest / oldest trade id of the page (absent when it is empty):
        the cursors for the next newer / older page."""
        if before is not None and after is not None:
            raise ApiError(400, "give before or after, not both")
        rows = tape_queries.page(db, product_id, limit, before, after) if db.tape else []
        if not rows:
            require_product(db, product_id)
            return []
        response.headers["CB-BEFORE"] = str(rows[0][0])
        response.headers["CB-AFTER"] = str(rows[-1][0])
        return [
            TapeTrade(
                time=iso_time(at),
                trade_id=trade_id,
                price=decimal_text(price),
                size=decimal_text(size),
                side=side,
            )
            for trade_id, at, price, size, side in rows
        ]

    @app.get("/products/{product_id}/completeness", response_model=Completeness, responses=ERRORS)
    def tape_completeness(
        product_id: ProductId,
        start: str | None = Query(None, description="default: end - 24 h"),
        end: str | None = Query(None, description="default: now"),
        limit: int = Query(100, ge=1, le=1000, description="at most this many holes listed"),
    ) -> Completeness:
        """Whether the trade tape holds every trade of [start, end) (at most 7 days), proven
        by trade id. The range spans from just after the last trade stored before `start` to
        just before the first stored at or after `end` (missing trades lie between their
        stored neighbours by time), or the window's own first/last stored trade where the
        tape starts or ends inside it. `missing` counts every missing id of the range;
        `holes` lists the oldest `limit`; `repaired` counts its trades stored from REST."""
        window_start, window_end = time_window(start, end, timedelta(1), timedelta(7))
        if not db.tape:
            raise ApiError(503, "the trade tape (table `trade`) is not readable")
        found = completeness.measure(db, product_id, window_start, window_end, limit)
        if found.first_trade_id is None:
            require_product(db, product_id)
        return Completeness(
            first_trade_id=found.first_trade_id,
            last_trade_id=found.last_trade_id,
            missing=found.missing,
            holes=found.holes,
            repaired=found.repaired,
        )

    @app.get("/products/{product_id}/ticker", response_model=Ticker, responses=ERRORS)
    def ticker(product_id: ProductId) -> Ticker:
        """The latest stored tick (by time, then sequence)."""
        row = queries.ticker(db, product_id)
        if row is None:
            raise ApiError(404, f"unknown product {product_id!r}")
        trade_id, price, size, at, bid, ask, volume, sequence = row
        return Ticker(
            trade_id=trade_id,
            price=decimal_text(price),
            size=decimal_text(size),
            time=iso_time(at),
            bid=decimal_text(bid),
            ask=decimal_text(ask),
            volume=decimal_text(volume),
            sequence=sequence,
        )

    @app.get("/products/{product_id}/stats", response_model=Stats, responses=ERRORS)
    def stats(product_id: ProductId) -> Stats:
        """Open, high, low, last and summed `last_size` over the stored ticks of the last
        24 h (null prices when there were none)."""
        end = utc_now()
        first, high, low, last, volume = queries.stats(db, product_id, end - timedelta(1), end)
        if first is None:
            require_product(db, product_id)
            return Stats(open=None, high=None, low=None, last=None, volume="0")
        return Stats(
            open=decimal_text(first),
            high=decimal_text(high),
            low=decimal_text(low),
            last=decimal_text(last),
            volume=decimal_text(volume),
        )

    @app.get("/trades/largest", response_model=list[Trade], responses=ERRORS)
    def largest_trades(
        product_id: str | None = Query(None, max_length=32, description="default: all"),
        hours: int = Query(24, ge=1, le=168),
        limit: int = Query(10, ge=1, le=100),
    ) -> list[Trade]:
        """The ticks with the largest `last_size` in the last `hours` (ties: newest first, then
        by sequence, then product)."""
        if product_id is None:
            products = [row[0] for row in queries.products(db)]
        else:
            require_product(db, product_id)
            products = [product_id]
        since = utc_now() - timedelta(hours=hours)
        return [
            Trade(
                product_id=product,
                sequence=sequence,
                trade_id=trade_id,
                time=iso_time(at),
                price=decimal_text(price),
                size=decimal_text(size),
                side=side,
                notional=product_text(price, size),
            )
            for product, sequence, trade_id, at, price, size, side in queries.largest(
                db, products, since, limit
            )
        ]

    @app.get("/coverage", response_model=list[Gap], responses=ERRORS)
    def coverage(
        product_id: str = Query(max_length=32),
        start: str | None = Query(None, description="default: end - 24 h"),
        end: str | None = Query(None, description="default: now"),
        min_gap_s: int = Query(60, ge=1, le=86_400),
        limit: int = Query(100, ge=1, le=1000),
    ) -> list[Gap]:
        """Stretches of [start, end) longer than min_gap_s with no stored tick (at most 7 days
        a request, the first `limit` gaps)."""
        require_product(db, product_id)
        window_start, window_end = time_window(start, end, timedelta(1), timedelta(7))
        first, last = queries.bounds(db, product_id, window_start, window_end)
        if first is None:
            holes = [(window_start, window_end)]
        else:
            gap_us = min_gap_s * 1_000_000
            inner = queries.gaps(db, product_id, window_start, window_end, gap_us, limit)
            holes = [(window_start, first), *inner, (last, window_end)]
        return [
            Gap(start=iso_time(a), end=iso_time(b), seconds=(b - a).total_seconds())
            for a, b in holes
            if (b - a).total_seconds() > min_gap_s
        ][:limit]

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        try:
            db.rows("SELECT 1")
        except (pymysql.err.MySQLError, PoolTimeout, OSError) as exc:
            return JSONResponse({"healthy": False, "database": str(exc)}, status_code=503)
        return JSONResponse({"healthy": True, "database": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error is {"message": one line}, as Coinbase answers."""

    def reply(status: int, message: str) -> JSONResponse:
        return JSONResponse({"message": message}, status_code=status)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return reply(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        name = str(first["loc"][-1]) if first.get("loc") else "request"
        return reply(422, f"{name}: {first['msg']}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return reply(exc.status_code, str(exc.detail))

    @app.exception_handler(PoolTimeout)
    async def busy(_: Request, exc: PoolTimeout) -> JSONResponse:
        return reply(503, "busy: no free database connection; try again")

    @app.exception_handler(pymysql.err.MySQLError)
    async def database(_: Request, exc: pymysql.err.MySQLError) -> JSONResponse:
        if timed_out(exc):
            return reply(503, "the query ran past ANALYSIS_QUERY_TIMEOUT_S; ask for less")
        log.error("database error", error=str(exc))
        return reply(503, f"database unavailable: {exc.args[-1] if exc.args else exc}")
