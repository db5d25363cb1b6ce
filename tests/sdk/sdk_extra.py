"""crmsync's extra checks of the HubSpot sandbox with HubSpot's official Python SDK (12.0.0).

They cover what ../../../shared/conformance/hubspot/sdk_check.py does not: list paging, batch
read/update/upsert on deals and companies, search operators (IN, BETWEEN, HAS_PROPERTY,
CONTAINS_TOKEN, NOT_IN…) and string sorts, properties by name and groups, pipelines and stages by
id, association v4 batch create/read/archive, merges (contacts and companies), GDPR delete,
archived listings, propertiesWithHistory, products and line items (create from a product, batch
upsert, search, the line item → deal association), and the 429 body as the SDK surfaces it
(through the sandbox's /_sandbox/faults storm). Every check creates its own uniquely named records.
"""
import json
import sys
import traceback
import urllib.request
import uuid

from hubspot import Client
from urllib3.util.retry import Retry
from hubspot.crm.associations.v4 import (
    BatchInputPublicAssociationMultiArchive,
    BatchInputPublicAssociationMultiPost,
    BatchInputPublicFetchAssociationsBatchRequest,
)
from hubspot.crm.companies import (
    BatchInputSimplePublicObjectBatchInput as CompanyBatchUpdate,
    BatchReadInputSimplePublicObjectId as CompanyBatchRead,
    PublicMergeInput as CompanyMerge,
    SimplePublicObjectBatchInput as CompanyUpdateItem,
    SimplePublicObjectInputForCreate as CompanyCreate,
)
from hubspot.crm.contacts import (
    PublicGdprDeleteInput,
    PublicMergeInput as ContactMerge,
    PublicObjectSearchRequest,
    SimplePublicObjectInputForCreate as ContactCreate,
)
from hubspot.crm.deals import (
    BatchInputSimplePublicObjectBatchInput as DealBatchUpdate,
    BatchInputSimplePublicObjectBatchInputForCreate as DealBatchCreate,
    BatchInputSimplePublicObjectBatchInputUpsert as DealBatchUpsert,
    BatchReadInputSimplePublicObjectId as DealBatchRead,
    SimplePublicObjectBatchInput as DealUpdateItem,
    SimplePublicObjectBatchInputForCreate as DealCreateItem,
    SimplePublicObjectBatchInputUpsert as DealUpsertItem,
    SimplePublicObjectInputForCreate as DealCreate,
)
from hubspot.crm.line_items import (
    BatchInputSimplePublicObjectBatchInputUpsert as LineItemBatchUpsert,
    PublicObjectSearchRequest as LineItemSearch,
    SimplePublicObjectBatchInputUpsert as LineItemUpsertItem,
    SimplePublicObjectInputForCreate as LineItemCreate,
)
from hubspot.crm.products import SimplePublicObjectInputForCreate as ProductCreate
from hubspot.crm.properties import PropertyCreate

BASE, TOKEN = sys.argv[1].rstrip("/"), sys.argv[2]
hs = Client.create(access_token=TOKEN, host=BASE)
RUN = uuid.uuid4().hex[:10]


def email(tag):
    return f"{tag}-{RUN}@example.com"


def status_of(call):
    """Calls `call`; returns (status, body) of the ApiException it raises, (None, None) on success."""
    try:
        call()
    except Exception as e:
        if not hasattr(e, "status"):
            raise
        return e.status, e.body
    return None, None


def admin(method, path, body=None):
    """Calls the sandbox's /_sandbox admin API (not part of HubSpot)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
        return json.loads(text) if text else None


def contact(tag, **props):
    return hs.crm.contacts.basic_api.create(
        simple_public_object_input_for_create=ContactCreate(properties={"email": email(tag), **props}))


def company(name, **props):
    return hs.crm.companies.basic_api.create(
        simple_public_object_input_for_create=CompanyCreate(properties={"name": f"{name} {RUN}", **props}))


def search(request, object_api=None):
    api = object_api or hs.crm.contacts.search_api
    return api.do_search(public_object_search_request=PublicObjectSearchRequest(**request))


def check_list_paging_visits_every_record_once():
    made = {company(f"Page{i}").id for i in range(7)}
    seen, after = [], None
    for _ in range(1000):
        page = hs.crm.companies.basic_api.get_page(limit=3, after=after, properties=["name"])
        assert len(page.results) <= 3
        seen += [r.id for r in page.results]
        if not page.paging or not page.paging.next:
            break
        after = page.paging.next.after
    assert made <= set(seen), "every created company is listed"
    assert len(seen) == len(set(seen)), "no record twice"
    assert [int(i) for i in seen] == sorted(int(i) for i in seen), "list is in id order"


def check_get_all_helper_pages_through_everything():
    made = {company(f"All{i}").id for i in range(3)}
    every = hs.crm.companies.get_all(properties=["name"])
    assert made <= {c.id for c in every}


def check_deal_batch_create_read_update_upsert():
    key = f"deal_key_{RUN}"
    hs.crm.properties.core_api.create("deals", property_create=PropertyCreate(
        name=key, label="Deal key", type="string", field_type="text", group_name="dealinformation", has_unique_value=True))
    created = hs.crm.deals.batch_api.create(batch_input_simple_public_object_batch_input_for_create=DealBatchCreate(
        inputs=[DealCreateItem(properties={"dealname": f"B{i} {RUN}", "amount": str(100 * i), key: f"k{i}"}) for i in range(3)]))
    ids = sorted(d.id for d in created.results)
    assert len(ids) == 3
    read = hs.crm.deals.batch_api.read(batch_read_input_simple_public_object_id=DealBatchRead(
        inputs=[{"id": i} for i in ids], properties=["dealname", "amount"]))
    assert sorted(d.id for d in read.results) == ids
    updated = hs.crm.deals.batch_api.update(batch_input_simple_public_object_batch_input=DealBatchUpdate(
        inputs=[DealUpdateItem(id=i, properties={"amount": "999"}) for i in ids]))
    assert all(d.properties["amount"] in ("999", "999.0") for d in updated.results)
    by_key = hs.crm.deals.batch_api.read(batch_read_input_simple_public_object_id=DealBatchRead(
        inputs=[{"id": "k1"}], properties=["dealname"], id_property=key))
    assert by_key.results[0].properties["dealname"] == f"B1 {RUN}", "batch read by a unique property"
    upserted = hs.crm.deals.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=DealBatchUpsert(
        inputs=[DealUpsertItem(id="k1", id_property=key, properties={"dealname": f"B1 renamed {RUN}"}),
                DealUpsertItem(id="k9", id_property=key, properties={"dealname": f"B9 {RUN}"})]))
    by_new = {d.properties.get(key) or d.properties.get("dealname"): d.new for d in upserted.results}
    assert sorted(d.new for d in upserted.results) == [False, True], f"one update, one create: {by_new}"


def check_company_batch_update_and_read_with_missing_id_is_207():
    a, b = company("BU1"), company("BU2")
    res = hs.crm.companies.batch_api.update(batch_input_simple_public_object_batch_input=CompanyBatchUpdate(
        inputs=[CompanyUpdateItem(id=a.id, properties={"domain": f"a{RUN}.io"}),
                CompanyUpdateItem(id=b.id, properties={"domain": f"b{RUN}.io"})]))
    assert {c.properties["domain"] for c in res.results} == {f"a{RUN}.io", f"b{RUN}.io"}
    resp = hs.crm.companies.batch_api.read_with_http_info(batch_read_input_simple_public_object_id=CompanyBatchRead(
        inputs=[{"id": a.id}, {"id": "987654321"}], properties=["domain"]))
    data, status = resp[0], resp[1]
    assert status == 207, f"partial batch read must be 207, got {status}"
    assert data.num_errors == 1 and data.errors[0].category == "OBJECT_NOT_FOUND"
    assert "987654321" in data.errors[0].context["ids"]


def check_company_upsert_by_unique_property():
    key = f"co_key_{RUN}"
    hs.crm.properties.core_api.create("companies", property_create=PropertyCreate(
        name=key, label="Company key", type="string", field_type="text", group_name="companyinformation", has_unique_value=True))
    from hubspot.crm.companies import (
        BatchInputSimplePublicObjectBatchInputUpsert as Upsert, SimplePublicObjectBatchInputUpsert as Item)
    first = hs.crm.companies.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=Upsert(
        inputs=[Item(id="acme", id_property=key, properties={"name": f"Acme {RUN}"})]))
    second = hs.crm.companies.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=Upsert(
        inputs=[Item(id="acme", id_property=key, properties={"name": f"Acme 2 {RUN}"})]))
    assert first.results[0].new is True and second.results[0].new is False
    assert first.results[0].id == second.results[0].id


def check_search_in_not_in_and_has_property():
    tag = f"in{RUN}"
    for i, city in enumerate(["Oslo", "Lima", "Pune"]):
        contact(f"{tag}{i}", lastname=tag, city=city, **({"phone": "+4711111111"} if i == 0 else {}))
    base = {"propertyName": "lastname", "operator": "EQ", "value": tag}
    got = search({"filter_groups": [{"filters": [base, {"propertyName": "city", "operator": "IN", "values": ["Oslo", "Pune"]}]}],
                  "properties": ["city"], "limit": 10})
    assert sorted(r.properties["city"] for r in got.results) == ["Oslo", "Pune"]
    got = search({"filter_groups": [{"filters": [base, {"propertyName": "city", "operator": "NOT_IN", "values": ["Oslo", "Pune"]}]}],
                  "properties": ["city"]})
    assert [r.properties["city"] for r in got.results] == ["Lima"]
    got = search({"filter_groups": [{"filters": [base, {"propertyName": "phone", "operator": "HAS_PROPERTY"}]}]})
    assert got.total == 1
    got = search({"filter_groups": [{"filters": [base, {"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"}]}]})
    assert got.total == 2


def check_search_between_on_numbers_and_or_groups():
    tag = f"btw{RUN}"
    for amount in (50, 150, 250, 350):
        hs.crm.deals.basic_api.create(simple_public_object_input_for_create=DealCreate(
            properties={"dealname": f"{tag} {amount}", "amount": str(amount)}))
    name = {"propertyName": "dealname", "operator": "CONTAINS_TOKEN", "value": tag}
    got = search({"filter_groups": [{"filters": [name, {"propertyName": "amount", "operator": "BETWEEN", "value": "100", "highValue": "300"}]}],
                  "sorts": [{"propertyName": "amount", "direction": "ASCENDING"}], "properties": ["amount"]},
                 hs.crm.deals.search_api)
    assert [r.properties["amount"].split(".")[0] for r in got.results] == ["150", "250"], "numeric BETWEEN, inclusive"
    got = search({"filter_groups": [{"filters": [name, {"propertyName": "amount", "operator": "LT", "value": "100"}]},
                                    {"filters": [name, {"propertyName": "amount", "operator": "GTE", "value": "300"}]}],
                  "properties": ["amount"]}, hs.crm.deals.search_api)
    assert got.total == 2, "filter groups are OR'ed"


def check_search_contains_token_with_wildcard_and_query():
    tag = f"tok{RUN}"
    contact(f"{tag}a", firstname="Marguerite", lastname=tag)
    contact(f"{tag}b", firstname="Margaret", lastname=tag)
    contact(f"{tag}c", firstname="Peggy", lastname=tag)
    base = {"propertyName": "lastname", "operator": "EQ", "value": tag}
    got = search({"filter_groups": [{"filters": [base, {"propertyName": "firstname", "operator": "CONTAINS_TOKEN", "value": "marg*"}]}]})
    assert got.total == 2
    got = search({"filter_groups": [{"filters": [base, {"propertyName": "firstname", "operator": "NOT_CONTAINS_TOKEN", "value": "marg*"}]}]})
    assert got.total == 1
    got = search({"query": "Peggy", "filter_groups": [{"filters": [base]}]})
    assert got.total == 1


def check_search_string_sorts_both_directions():
    tag = f"srt{RUN}"
    for first in ("charlie", "Alpha", "bravo"):
        contact(f"{tag}{first}", firstname=first, lastname=tag)
    base = [{"filters": [{"propertyName": "lastname", "operator": "EQ", "value": tag}]}]
    asc = search({"filter_groups": base, "sorts": [{"propertyName": "firstname", "direction": "ASCENDING"}], "properties": ["firstname"]})
    assert [r.properties["firstname"] for r in asc.results] == ["Alpha", "bravo", "charlie"], "case-insensitive string sort"
    desc = search({"filter_groups": base, "sorts": ["-firstname"], "properties": ["firstname"]})
    assert [r.properties["firstname"] for r in desc.results] == ["charlie", "bravo", "Alpha"], "string form '-prop' sorts descending"


def check_search_rejects_too_many_filter_groups():
    groups = [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}] * 6
    st, _ = status_of(lambda: search({"filter_groups": groups}))
    assert st == 400, f"6 filter groups must be rejected by default, got {st}"


def check_properties_get_by_name_and_groups():
    email_prop = hs.crm.properties.core_api.get_by_name("contacts", "email")
    assert email_prop.name == "email" and email_prop.type == "string"
    stage = hs.crm.properties.core_api.get_by_name("deals", "dealstage")
    assert stage.type == "enumeration" and any(o.value == "closedwon" for o in stage.options)
    all_props = hs.crm.properties.core_api.get_all("companies")
    assert "domain" in {p.name for p in all_props.results}
    groups = hs.crm.properties.groups_api.get_all("contacts")
    assert "contactinformation" in {g.name for g in groups.results}
    group = hs.crm.properties.groups_api.get_by_name("deals", "dealinformation")
    assert group.name == "dealinformation"
    st, _ = status_of(lambda: hs.crm.properties.core_api.get_by_name("contacts", f"nope_{RUN}"))
    assert st == 404


def check_duplicate_property_is_409():
    name = f"dup_{RUN}"
    make = lambda: hs.crm.properties.core_api.create("contacts", property_create=PropertyCreate(
        name=name, label="Dup", type="string", field_type="text", group_name="contactinformation"))
    make()
    st, body = status_of(make)
    assert st == 409 and "OBJECT_ALREADY_EXISTS" in body


def check_pipeline_and_stage_by_id():
    pipeline = hs.crm.pipelines.pipelines_api.get_by_id("deals", "default")
    assert pipeline.id == "default" and len(pipeline.stages) == 7
    stages = hs.crm.pipelines.pipeline_stages_api.get_all("deals", "default")
    assert [s.id for s in stages.results][0] == "appointmentscheduled"
    won = hs.crm.pipelines.pipeline_stages_api.get_by_id("deals", "default", "closedwon")
    assert won.metadata["probability"] == "1.0"
    st, _ = status_of(lambda: hs.crm.pipelines.pipelines_api.get_by_id("deals", f"nope{RUN}"))
    assert st == 404


def check_association_batch_create_read_archive():
    c1, c2 = contact("ab1"), contact("ab2")
    co = company("AssocBatch")
    hs.crm.associations.v4.batch_api.create("contacts", "companies", batch_input_public_association_multi_post=BatchInputPublicAssociationMultiPost(
        inputs=[{"from": {"id": c.id}, "to": {"id": co.id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279}]} for c in (c1, c2)]))
    read = hs.crm.associations.v4.batch_api.get_page("companies", "contacts", batch_input_public_fetch_associations_batch_request=BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": co.id}]))
    targets = sorted(str(t.to_object_id) for t in read.results[0].to)
    assert targets == sorted([c1.id, c2.id]), "batch read sees both from the company side"
    assert any(t.type_id == 280 for t in read.results[0].to[0].association_types)
    hs.crm.associations.v4.batch_api.archive("contacts", "companies", batch_input_public_association_multi_archive=BatchInputPublicAssociationMultiArchive(
        inputs=[{"from": {"id": c1.id}, "to": [{"id": co.id}]}]))
    left = hs.crm.associations.v4.basic_api.get_page("companies", co.id, "contacts")
    assert [str(r.to_object_id) for r in left.results] == [c2.id]


def check_association_single_archive_and_record_associations():
    c, co = contact("as1"), company("AssocSingle")
    hs.crm.associations.v4.basic_api.create_default("contacts", c.id, "companies", co.id)
    got = hs.crm.contacts.basic_api.get_by_id(c.id, associations=["companies"])
    assert [a.id for a in got.associations["companies"].results][:1] == [co.id]
    hs.crm.associations.v4.basic_api.archive("contacts", c.id, "companies", co.id)
    assert hs.crm.associations.v4.basic_api.get_page("contacts", c.id, "companies").results == []


def check_line_item_from_a_product_with_its_deal():
    product = hs.crm.products.basic_api.create(simple_public_object_input_for_create=ProductCreate(
        properties={"name": f"Widget {RUN}", "price": "19.99", "hs_sku": f"W-{RUN}"}))
    deal = hs.crm.deals.basic_api.create(simple_public_object_input_for_create=DealCreate(properties={"dealname": f"Order {RUN}"}))
    line = hs.crm.line_items.basic_api.create(simple_public_object_input_for_create=LineItemCreate(
        properties={"hs_product_id": product.id, "quantity": "2"},
        associations=[{"to": {"id": deal.id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}]))
    got = hs.crm.line_items.basic_api.get_by_id(line.id, properties=["name", "price", "amount", "hs_product_id"], associations=["deals"])
    assert got.properties["name"] == f"Widget {RUN}" and got.properties["price"] == "19.99", got.properties
    assert got.properties["amount"] == "39.98" and got.properties["hs_product_id"] == product.id
    assert [a.id for a in got.associations["deals"].results] == [deal.id]
    back = hs.crm.associations.v4.basic_api.get_page("deals", deal.id, "line_items")
    assert [str(r.to_object_id) for r in back.results] == [line.id]
    assert back.results[0].association_types[0].type_id == 19
    st, body = status_of(lambda: hs.crm.line_items.basic_api.create(simple_public_object_input_for_create=LineItemCreate(
        properties={"name": "ghost", "hs_product_id": "1"})))
    assert st == 400 and json.loads(body)["category"] == "VALIDATION_ERROR", (st, body)


def check_line_item_batch_upsert_and_search_by_product():
    name = f"li_key_{RUN}"
    hs.crm.properties.core_api.create("line_items", property_create=PropertyCreate(
        name=name, label="Key", type="string", field_type="text", group_name="lineiteminformation", has_unique_value=True))
    product = hs.crm.products.basic_api.create(simple_public_object_input_for_create=ProductCreate(properties={"name": f"Gadget {RUN}", "price": "5"}))
    upsert = lambda qty: hs.crm.line_items.batch_api.upsert(batch_input_simple_public_object_batch_input_upsert=LineItemBatchUpsert(inputs=[
        LineItemUpsertItem(id=f"{RUN}-{i}", id_property=name, properties={"hs_product_id": product.id, "quantity": qty})
        for i in range(2)]))
    first = upsert("1")
    assert all(r.new for r in first.results)
    second = upsert("3")
    assert not any(r.new for r in second.results) and {r.id for r in first.results} == {r.id for r in second.results}
    found = hs.crm.line_items.search_api.do_search(public_object_search_request=LineItemSearch(
        filter_groups=[{"filters": [{"propertyName": "hs_product_id", "operator": "EQ", "value": product.id}]}],
        properties=["quantity", "amount"]))
    assert found.total == 2 and all(r.properties["amount"] == "15" for r in found.results), found


def check_contact_merge_resolves_the_absorbed_id():
    keep, gone = contact("mk", firstname="Keep"), contact("mg", phone="+33100000000")
    merged = hs.crm.contacts.basic_api.merge(public_merge_input=ContactMerge(primary_object_id=keep.id, object_id_to_merge=gone.id))
    assert merged.id == keep.id
    via_old = hs.crm.contacts.basic_api.get_by_id(gone.id, properties=["phone", "hs_merged_object_ids"])
    assert via_old.id == keep.id, "an absorbed id resolves to the survivor"
    assert via_old.properties["phone"] == "+33100000000"
    assert gone.id in via_old.properties["hs_merged_object_ids"].split(";")


def check_company_merge():
    keep, gone = company("MergeKeep"), company("MergeGone", domain=f"gone{RUN}.io")
    merged = hs.crm.companies.basic_api.merge(public_merge_input=CompanyMerge(primary_object_id=keep.id, object_id_to_merge=gone.id))
    assert merged.id == keep.id
    got = hs.crm.companies.basic_api.get_by_id(gone.id, properties=["domain"])
    assert got.id == keep.id and got.properties["domain"] == f"gone{RUN}.io"


def check_gdpr_delete_is_permanent():
    c = contact("gdpr")
    hs.crm.contacts.basic_api.purge(public_gdpr_delete_input=PublicGdprDeleteInput(object_id=email("gdpr"), id_property="email"))
    st, _ = status_of(lambda: hs.crm.contacts.basic_api.get_by_id(c.id, archived=True))
    assert st == 404, f"a GDPR-deleted contact is gone even from archived reads, got {st}"


def check_archived_listing_only_shows_archived():
    c = contact("arch")
    hs.crm.contacts.basic_api.archive(c.id)
    ids, after = [], None
    for _ in range(1000):
        page = hs.crm.contacts.basic_api.get_page(archived=True, limit=100, after=after)
        assert all(r.archived for r in page.results)
        ids += [r.id for r in page.results]
        if not page.paging or not page.paging.next:
            break
        after = page.paging.next.after
    assert c.id in ids
    live = hs.crm.contacts.basic_api.get_page(limit=100, properties=["email"])
    assert all(not r.archived for r in live.results)


def check_properties_with_history():
    c = contact("hist", firstname="One")
    hs.crm.contacts.basic_api.update(c.id, simple_public_object_input={"properties": {"firstname": "Two"}})
    got = hs.crm.contacts.basic_api.get_by_id(c.id, properties_with_history=["firstname"])
    versions = got.properties_with_history["firstname"]
    assert [v.value for v in versions][:2] == ["Two", "One"], "newest first"
    assert versions[0].source_type


def check_429_body_through_the_sdk():
    # urllib3 (under the SDK) silently retries a 429 that carries Retry-After, sleeping for it;
    # turn that off to see the body, as an integrator with its own retry policy would.
    strict = Client.create(access_token=TOKEN, host=BASE, retry=Retry(total=0, respect_retry_after_header=False))
    admin("PUT", "/_sandbox/faults", {"storm": {"policy": "TEN_SECONDLY_ROLLING", "requests": 1}})
    try:
        st, body = status_of(lambda: strict.crm.contacts.basic_api.get_page(limit=1))
    finally:
        admin("PUT", "/_sandbox/faults", {})
    assert st == 429, f"expected 429, got {st}"
    parsed = json.loads(body)
    assert parsed["policyName"] == "TEN_SECONDLY_ROLLING"
    assert parsed["message"] == "You have reached your ten_secondly_rolling limit."
    assert hs.crm.contacts.basic_api.get_page(limit=1) is not None, "the storm is over after one request"


def check_secondly_429_is_not_retried_by_urllib3():
    admin("PUT", "/_sandbox/faults", {"storm": {"policy": "SECONDLY", "requests": 1}})
    try:
        st, body = status_of(lambda: hs.crm.contacts.search_api.do_search(
            public_object_search_request=PublicObjectSearchRequest(limit=1)))
    finally:
        admin("PUT", "/_sandbox/faults", {})
    assert st == 429 and json.loads(body)["message"] == "You have reached your secondly limit."


def check_5xx_surfaces_as_service_exception():
    admin("PUT", "/_sandbox/faults", {"error_rate": 1.0})
    try:
        try:
            hs.crm.companies.basic_api.get_page(limit=1)
            raise AssertionError("expected a server error")
        except Exception as e:
            if isinstance(e, AssertionError):
                raise
            assert type(e).__name__ == "ServiceException", type(e).__name__
            assert e.status in (500, 502, 503)
            assert json.loads(e.body)["status"] == "error"
    finally:
        admin("PUT", "/_sandbox/faults", {})


def check_expired_token_is_401():
    admin("PUT", "/_sandbox/faults", {"token_expires_after_ms": 0})
    try:
        st, body = status_of(lambda: hs.crm.deals.basic_api.get_page(limit=1))
    finally:
        admin("PUT", "/_sandbox/faults", {})
    assert st == 401 and json.loads(body)["category"] == "EXPIRED_AUTHENTICATION"


CHECKS = [v for k, v in sorted(globals().items()) if k.startswith("check_")]

if __name__ == "__main__":
    passed = failed = 0
    for check in CHECKS:
        try:
            check()
            passed += 1
            print(f"ok   {check.__name__}")
        except Exception as e:
            failed += 1
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            body = getattr(e, "body", None)
            print(f"FAIL {check.__name__}: {type(e).__name__}: {first}" + (f" body={body[:300]}" if body else ""))
            if "-v" in sys.argv:
                traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
