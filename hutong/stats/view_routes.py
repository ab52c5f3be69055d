"""HTTP API for stored views and the analytics database: ``/api/stats/views…``, ``/api/stats/sql``."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.stats import analytics, excel, library

router = APIRouter(tags=["stats 统计"])


class SqlQuery(BaseModel):
    """One read-only SQL statement over the materialised views."""

    model_config = ConfigDict(extra="forbid")
    sql: str = Field(..., min_length=1, max_length=20_000, description="SELECT … FROM <materialised view>")
    params: list[str | int | float | bool | None] = Field(default_factory=list, max_length=100)
    max_rows: int = Field(10_000, ge=1, le=analytics.MAX_QUERY_ROWS)


@router.get("/api/stats/views", summary="List the ViewDefinitions stored on the node")
def list_views(request: Request, caller: Caller = Depends(permit("stats.view.read"))):
    with request.app.state.store.read() as tx:
        return {"views": library.list_views(tx)}


@router.put("/api/stats/views/{view_id}", summary="Store (create or replace) a ViewDefinition, checked first")
def put_view(view_id: str, request: Request, definition: dict = Body(...),
             caller: Caller = Depends(permit("stats.view.write"))):
    with request.app.state.store.write(caller.tenant) as tx:
        rid = library.save_view(tx, definition, view_id)
    return {"id": rid}


@router.post("/api/stats/views/{view_id}/materialize",
             summary="Run a stored view over the record into a table of the analytics database (DuckDB)")
def materialize(view_id: str, request: Request, table: str | None = None,
                caller: Caller = Depends(permit("stats.view.materialize"))):
    store = request.app.state.store
    with store.read() as tx:
        view = library.check_view(library.load_view(tx, view_id))
    name = analytics.table_name(view, table)
    rows = analytics.materialize(store, view, analytics.database_path(store.settings), name)
    return {"table": name, "rows": rows}


@router.get("/api/stats/tables", summary="The materialised tables and their row counts")
def list_tables(request: Request, caller: Caller = Depends(permit("stats.view.read"))):
    return {"tables": analytics.tables(analytics.database_path(request.app.state.store.settings))}


@router.post("/api/stats/sql", summary="One read-only SQL query over the materialised views (DuckDB)")
def run_sql(body: SqlQuery, request: Request, format: str = "json",
            caller: Caller = Depends(permit("stats.sql"))):
    result = analytics.query(analytics.database_path(request.app.state.store.settings), body.sql, body.params,
                             body.max_rows)
    if format == "xlsx":
        sheet = excel.Sheet("查询结果 Query result", [excel.Column(c) for c in result["columns"]], result["rows"],
                            notes=[f"SQL: {body.sql[:500]}"])
        return Response(excel.workbook([sheet]), media_type=excel.XLSX,
                        headers={"Content-Disposition": 'attachment; filename="query.xlsx"'})
    return result
