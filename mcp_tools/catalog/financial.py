"""Money and materials: estimates, invoices, payments, products, work orders, material orders."""

from __future__ import annotations

from typing import Any

from mcp_tools.catalog.args import amount_schema, jnid_schema
from mcp_tools.catalog.base import ToolContext, ToolResult, ToolSpec
from mcp_tools.catalog.declare import CREATE, DELETE, UPDATE, detail_tool, list_tool, object_schema, text, write_tool
from mcp_tools.catalog.runtime import Args
from mcp_tools.catalog.writes import created, deleted, link, record_body, updated

ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": text("Item name, e.g. 'Architectural Shingles'.", max_length=200, minLength=1),
        "description": text("Item description.", max_length=1000),
        "quantity": amount_schema("How many units."),
        "price": amount_schema("Unit price."),
        "cost": amount_schema("Unit cost."),
        "uom": text("Unit of measure, e.g. 'SQ'.", max_length=20),
        "jnid": jnid_schema("Product jnid, when the item comes from the catalog (get_products)."),
    },
    "required": ["name", "quantity", "price"],
    "additionalProperties": False,
}
ESTIMATE_PROPS: dict[str, Any] = {
    "items": {"type": "array", "items": ITEM_SCHEMA, "minItems": 1, "maxItems": 200, "description": "Line items."},
    "status_name": text("Estimate status, e.g. 'Draft', 'Sent', 'Approved'.", max_length=100),
    "description": text("Notes shown on the estimate.", max_length=4000),
    "external_id": text("Your system's id for this estimate.", max_length=100),
}


def _estimate_body(args: Args) -> dict[str, Any]:
    body = record_body(args, {"related_to": "related"})
    if "related" in body:
        body["related"] = link(body["related"])
    if "items" in body:
        body.update(_totals(body["items"]))
    return body


def _totals(items: list[dict[str, Any]]) -> dict[str, float]:
    # Subtotal and cost follow from the items alone; tax and total depend on the account's tax rules, so they
    # are left to JobNimbus rather than guessed.
    subtotal = sum(i["quantity"] * i["price"] for i in items)
    cost = sum(i["quantity"] * i.get("cost", 0) for i in items)
    return {"subtotal": round(subtotal, 2), "cost": round(cost, 2)}


def _create_estimate(ctx: ToolContext, args: Args) -> ToolResult:
    return created(ctx, "estimates", "estimate", _estimate_body(args))


def _update_estimate(ctx: ToolContext, args: Args) -> ToolResult:
    return updated(ctx, "estimates", "estimate", args, _estimate_body(args))


def _delete_estimate(ctx: ToolContext, args: Args) -> ToolResult:
    return deleted(ctx, "estimates", "estimate", args)


EST_JNID = {"jnid": jnid_schema("The estimate's jnid.")}
ON_JOB = "Use related_to=<job jnid> for one job's; status for one status ('Draft', 'Sent', 'Paid', ...)."

TOOLS: list[ToolSpec] = [
    list_tool(
        "get_estimates",
        "List estimates",
        f"List estimates (quotes) with totals. {ON_JOB}",
        entity="estimate",
        policy="estimates",
        resource="estimates",
    ),
    detail_tool(
        "get_estimate",
        "Get an estimate",
        "Return one estimate by jnid, with its line items and totals.",
        entity="estimate",
        policy="estimates",
        resource="estimates",
    ),
    write_tool(
        "create_estimate",
        "Create an estimate",
        "Create an estimate on a job (related_to) from line items; subtotal and cost are computed from them, tax and "
        "total by JobNimbus.",
        object_schema(
            {"related_to": jnid_schema("jnid of the job (or contact) the estimate is for."), **ESTIMATE_PROPS},
            required=["related_to", "items"],
        ),
        CREATE,
        _create_estimate,
    ),
    write_tool(
        "update_estimate",
        "Update an estimate",
        "Change an estimate's items (totals recomputed), status_name or description.",
        object_schema({**EST_JNID, **ESTIMATE_PROPS}, required=["jnid"]),
        UPDATE,
        _update_estimate,
    ),
    write_tool(
        "delete_estimate",
        "Delete an estimate",
        "Delete an estimate (JobNimbus marks it inactive).",
        object_schema(EST_JNID, required=["jnid"]),
        DELETE,
        _delete_estimate,
    ),
    list_tool(
        "get_invoices",
        "List invoices",
        f"List invoices with total, total_paid and due. {ON_JOB}",
        entity="invoice",
        policy="invoices",
        resource="invoices",
    ),
    detail_tool(
        "get_invoice",
        "Get an invoice",
        "Return one invoice by jnid, with line items, totals and amount due.",
        entity="invoice",
        policy="invoices",
        resource="invoices",
    ),
    list_tool(
        "get_payments",
        "List payments",
        "List payments received. related_to=<invoice, job or contact jnid>.",
        entity="payment",
        policy="payments",
        resource="payments",
    ),
    list_tool(
        "get_products",
        "List products",
        "List the product catalog (materials and labor with price, cost, unit): what estimate line items are made of.",
        entity="product",
        policy="products",
        resource="products",
    ),
    list_tool(
        "get_work_orders",
        "List work orders",
        f"List work orders (crew assignments). {ON_JOB}",
        entity="workorder",
        policy="workorders",
        resource="workorders",
    ),
    detail_tool(
        "get_work_order",
        "Get a work order",
        "Return one work order by jnid, with its items.",
        entity="workorder",
        policy="workorders",
        resource="workorders",
    ),
    list_tool(
        "get_material_orders",
        "List material orders",
        f"List material orders to suppliers. {ON_JOB}",
        entity="materialorder",
        policy="materialorders",
        resource="materialorders",
    ),
]
