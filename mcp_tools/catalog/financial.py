"""Money and materials: estimates, invoices, payments, products, work orders, material orders."""

from __future__ import annotations

from typing import Any

from mcp_tools.catalog.args import amount_schema, jnid_schema
from mcp_tools.catalog.base import Args, ToolSpec
from mcp_tools.catalog.declare import create_tool, delete_tool, list_tool, object_schema, text, update_tool
from mcp_tools.catalog.writes import link, record_body

ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": text(max_length=200, minLength=1),
        "description": text(max_length=1000),
        "quantity": amount_schema(),
        "price": amount_schema("Unit price."),
        "cost": amount_schema("Unit cost."),
        "uom": text("Unit of measure, e.g. 'SQ'.", max_length=20),
        "jnid": jnid_schema("The product's jnid (get_products), if any."),
    },
    "required": ["name", "quantity", "price"],
    "additionalProperties": False,
}
ESTIMATE_PROPS: dict[str, Any] = {
    "items": {"type": "array", "items": ITEM_SCHEMA, "minItems": 1, "maxItems": 200},
    "status_name": text("e.g. 'Draft', 'Sent', 'Approved'.", max_length=100),
    "description": text(max_length=4000),
    "external_id": text(max_length=100),
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


ON_JOB = "related_to=<job jnid> for a job's, status e.g. 'Draft', 'Sent', 'Paid'."

TOOLS: list[ToolSpec] = [
    list_tool(
        name="get_estimates",
        title="List estimates",
        description=f"List estimates (quotes) with totals. {ON_JOB} jnid for one estimate with its line items.",
        entity="estimate",
        by_jnid=True,
    ),
    create_tool(
        name="create_estimate",
        title="Create an estimate",
        description="Create an estimate on a job (related_to) from line items; subtotal and cost are computed from "
        "them, tax and total by JobNimbus.",
        entity="estimate",
        schema=object_schema(
            {"related_to": jnid_schema("The job's (or contact's) jnid."), **ESTIMATE_PROPS},
            required=["related_to", "items"],
        ),
        body=_estimate_body,
    ),
    update_tool(
        name="update_estimate",
        title="Update an estimate",
        description="Change an estimate's items (totals recomputed), status_name or description.",
        entity="estimate",
        properties=ESTIMATE_PROPS,
        body=_estimate_body,
    ),
    delete_tool(
        name="delete_estimate",
        title="Delete an estimate",
        description="Delete an estimate (JobNimbus marks it inactive).",
        entity="estimate",
    ),
    list_tool(
        name="get_invoices",
        title="List invoices",
        description=f"List invoices with total, total_paid and due. {ON_JOB} jnid for one invoice with its line items.",
        entity="invoice",
        by_jnid=True,
    ),
    list_tool(
        name="get_payments",
        title="List payments",
        description="List payments received. related_to=<invoice, job or contact jnid>.",
        entity="payment",
    ),
    list_tool(
        name="get_products",
        title="List products",
        description="List the product catalog (materials and labor with price, cost, unit): what estimate line items "
        "are made of.",
        entity="product",
    ),
    list_tool(
        name="get_work_orders",
        title="List work orders",
        description=f"List work orders (crew assignments). {ON_JOB} jnid for one work order with its items.",
        entity="workorder",
        by_jnid=True,
    ),
    list_tool(
        name="get_material_orders",
        title="List material orders",
        description=f"List material orders to suppliers. {ON_JOB}",
        entity="materialorder",
    ),
]
