"""The goes-with model on a small hand-made history with known answers, recommendations'
exclusions and fallbacks, the scheduler's refresh claim, repurchase cycles, and the
``recommend`` and ``insights`` commands.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersale.cli import build
from aftersale.core.events import iso
from aftersale.store import catalog, goes_with, recommend
from aftersale.store.tables import link_clicks
from aftersale.workers import recommend_model
from tests.helpers import DEMO_SHOP, install_shop, rows
from tests.test_cli import env_for

DAY0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def product(ref: str, **facts) -> dict:
    return {
        "id": ref,
        "title": facts.pop("title", f"Product {ref}"),
        "price": facts.pop("price", "10.00"),
        "product_type": facts.pop("product_type", "Shoe care"),
        "tags": facts.pop("tags", []),
        "published": facts.pop("published", True),
        "in_stock": facts.pop("in_stock", True),
        **facts,
    }


def order(ref: str, customer: str, items: list[str], day: int = 0) -> dict:
    return {
        "id": ref,
        "customer_id": customer,
        "currency": "EUR",
        "created_at": iso(DAY0 + timedelta(days=day)),
        "line_items": [{"product_id": p, "quantity": 1, "price": "10.00"} for p in items],
    }


#: A is bought with B in 3 orders and with C in 2, B with C once; 5 orders in all
HISTORY = [
    order("o1", "c1", ["A", "B"]),
    order("o2", "c2", ["A", "B"]),
    order("o3", "c3", ["A", "C"]),
    order("o4", "c4", ["B"]),
    order("o5", "c5", ["A", "B", "C"]),
]


@pytest.fixture
def shop_id(runtime):
    return install_shop(runtime)


def store_history(runtime, shop_id, history, catalog_items=()):
    now = runtime.clock.now()
    with runtime.engine.begin() as conn:
        catalog.save_products(conn, shop_id, list(catalog_items), now)
        for one in history:
            catalog.record_order(conn, shop_id, "order.created", one, one["customer_id"])


def test_pair_statistics_have_the_known_answers(runtime, shop_id):
    store_history(runtime, shop_id, HISTORY, [product(r) for r in "ABC"])
    with runtime.engine.begin() as conn:
        done = recommend.recompute(conn, shop_id, 2, runtime.clock.now())
    assert (done.orders, done.products, done.pairs) == (5, 3, 4)  # B-C is under the support
    with runtime.engine.connect() as conn:
        pairs = {
            (p.product_ref, p.other_ref): (p.together, round(p.confidence, 4), round(p.lift, 4))
            for p in recommend.top_pairs(conn, shop_id, 10)
        }
    # each pair once: together, P(other | product), lift = P(both) / (P(A) P(B))
    assert pairs == {("A", "B"): (3, 0.75, 0.9375), ("A", "C"): (2, 0.5, 1.25)}


def test_only_the_strongest_pairs_of_a_product_are_kept(runtime, shop_id):
    """A best-seller pairs with everything; a lookup reads only its ``keep`` strongest."""
    store_history(runtime, shop_id, HISTORY, [product(r) for r in "ABC"])
    with runtime.engine.begin() as conn:
        done = recommend.recompute(conn, shop_id, 2, runtime.clock.now(), keep=1)
    with runtime.engine.connect() as conn:
        kept = sorted(
            (p.product_ref, p.other_ref)
            for p in conn.execute(recommend.product_pairs.select()).all()
            if p.shop_id == shop_id
        )
    # A's strongest is B (3 of 4 orders, shrunk 3/9 against C's 2/9); B and C keep A
    assert (done.pairs, kept) == (3, [("A", "B"), ("B", "A"), ("C", "A")])


def test_recommendations_rank_by_confidence_and_exclude_what_is_owned(runtime, shop_id):
    items = [product(r) for r in "ABC"]
    store_history(runtime, shop_id, HISTORY, items)
    refresh(runtime, shop_id)
    with runtime.engine.connect() as conn:
        fresh = goes_with.recommend(conn, shop_id, ["A"], "new-customer", 2)
        # B: 3 of A's 4 orders; C: 2 of 4 (the higher lift, but the weaker evidence)
        assert [(r.product.product_ref, r.reason) for r in fresh] == [
            ("B", "bought_with"),
            ("C", "bought_with"),
        ]
        assert fresh[1].why() == "bought with A in 2 orders (confidence 0.50, lift 1.25)"
        owner = goes_with.recommend(conn, shop_id, ["A"], "c3", 3)  # c3 already has C
        assert [r.product.product_ref for r in owner] == ["B"]


def test_fallbacks_to_best_sellers_of_the_type_then_a_tag(runtime, shop_id):
    items = [
        product("A", tags=["leather"]),
        product("B", tags=["leather"]),
        product("C"),
        product("D", product_type="Socks"),  # best-selling, other type, no shared tag
        product("E", product_type="Shoe care", in_stock=False),
        product("F", product_type="Shoe care", published=False),
        product("G", product_type="Bags", tags=["leather"]),
        product("N", product_type="Shoe care"),  # never bought: a new product
    ]
    history = [*HISTORY, order("o6", "c6", ["D"]), order("o7", "c7", ["D", "G"])]
    store_history(runtime, shop_id, history, items)
    refresh(runtime, shop_id)
    with runtime.engine.connect() as conn:
        found = goes_with.recommend(conn, shop_id, ["N"], None, 5)
    picked = [(r.product.product_ref, r.reason, r.because) for r in found]
    # same type by sales (A, B: 4 orders; C: 2); then a tag is not possible (N has none)
    assert picked == [
        ("A", "same_type", "Shoe care"),
        ("B", "same_type", "Shoe care"),
        ("C", "same_type", "Shoe care"),
    ]
    with runtime.engine.connect() as conn:
        bag_buyer = goes_with.recommend(conn, shop_id, ["B"], "c2", 3)
    # B's pairs: A (owned by c2), C (bought with B once: under the support); so the
    # best-selling shoe care c2 lacks, then a leather best-seller; N never sold: not one
    reasons = [(r.product.product_ref, r.reason) for r in bag_buyer]
    assert reasons == [("C", "same_type"), ("G", "same_tag")]
    assert all(r.product.product_ref not in {"E", "F"} for r in found + bag_buyer)


def test_repurchase_cycles_are_medians_with_their_count(runtime, shop_id):
    history = [
        order("x1", "x", ["P"], 0),
        order("x2", "x", ["P"], 30),
        order("x3", "x", ["P"], 60),
        order("y1", "y", ["P"], 0),
        order("y2", "y", ["P", "Q"], 40),
        order("z1", "z", ["Q"], 10),
        order("z2", "z", ["Q"], 20),
    ]
    store_history(runtime, shop_id, history, [product("P"), product("Q")])
    done = refresh(runtime, shop_id)
    assert done.cycles == 3  # P, Q and the type they share
    with runtime.engine.connect() as conn:
        p = recommend.cycle(conn, shop_id, "product", "P")
        q = recommend.cycle(conn, shop_id, "product", "Q")
        kind = recommend.cycle(conn, shop_id, "type", "Shoe care")
    assert (p.median_days, p.observations) == (30.0, 3)  # gaps 30, 30, 40
    assert (q.median_days, q.observations) == (10.0, 1)
    # per type: x 30, 30; y 40 (P then P+Q on one day counts once); z 10 -> median of 4
    assert (kind.median_days, kind.observations) == (30.0, 4)


def test_the_scheduler_claims_a_refresh_once(runtime, shop_id, clock):
    now = clock.now()
    assert recommend_model.claim_due(runtime, now) == [shop_id]
    assert recommend_model.claim_due(runtime, now) == []  # a second scheduler gets nothing
    later = now + timedelta(hours=1, seconds=1)
    assert recommend_model.claim_due(runtime, later) == [shop_id]


def test_recommend_and_insights_commands(runtime, shop_id, cli_runner, config):
    store_history(runtime, shop_id, HISTORY, [product(r, title=f"Item {r}") for r in "ABC"])
    env = {**env_for(config), "SECRET_KEY": config.secret_key}
    result = cli_runner.invoke(build(), ["insights", "--shop", DEMO_SHOP, "--refresh"], env=env)
    assert result.exit_code == 0, result.output
    assert "counted 5 orders: 3 products, 4 pairs" in result.output
    assert "Item A (A)" in result.output and "1.25" in result.output
    result = cli_runner.invoke(
        build(), ["recommend", "--shop", DEMO_SHOP, "--order", "o4"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "bought with B in 3 orders (confidence 0.75, lift 0.94)" in result.output
    missing = cli_runner.invoke(
        build(), ["recommend", "--shop", DEMO_SHOP, "--order", "nope"], env=env
    )
    assert missing.exit_code != 0 and "not stored" in missing.output


def refresh(runtime, shop_id):
    return recommend_model.refresh_shop(runtime, shop_id)


# -- in templates: recommendations(n) in two languages, and the tracked click -------------

PACK = Path(__file__).resolve().parent.parent / "examples" / "cross-sell-and-replenish"


@pytest.fixture
def rules_dir(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(PACK, folder)
    return folder


def rendered(runtime, shop_id, locale: str, order_products=("A",)):
    from types import SimpleNamespace

    from aftersale.core.events import Event
    from aftersale.rules.pipeline import template_context
    from aftersale.rules.settings import shop_settings
    from aftersale.workers.message_links import MessageLinks
    from aftersale.workers.template_recommend import SOURCE_KEY, source_for

    event = Event(
        kind="shipment.delivered",
        shop=DEMO_SHOP,
        key="f1",
        occurred_at=DAY0,
        order={
            "id": "o9",
            "name": "#1009",
            "currency": "RSD",
            "line_items": [{"product_id": p, "title": p} for p in order_products],
        },
        customer={"id": "c9", "first_name": "Ana", "locale": locale},
    )
    with runtime.engine.connect() as conn:
        shop = runtime.shop(conn, shop_id)
        settings = shop_settings(runtime.rules, shop)
        context = template_context(
            event,
            shop_domain=shop.domain,
            shop_name=settings.shop_name,
            customer=event.customer,
            logo_url=settings.logo_url,
        )
        context[SOURCE_KEY] = source_for(conn, shop_id, event)
        action = SimpleNamespace(id=0, category="marketing", order_ref="o9")
        links = MessageLinks.for_action(runtime, shop, settings, action, event.order, None)
        return runtime.renderer.render("goes_with", context, [locale], links)


def test_a_template_shows_recommendations_in_two_languages(runtime, shop_id, client):
    items = [
        product(r, title=f"Item {r}", price="1990.00", image_url=f"https://cdn.example/{r}.jpg")
        for r in "ABC"
    ]
    items[2]["image_alt"] = "A tin of shoe cream"
    store_history(runtime, shop_id, HISTORY, items)
    refresh(runtime, shop_id)
    english, serbian = rendered(runtime, shop_id, "en"), rendered(runtime, shop_id, "sr")
    for mail in (english, serbian):
        assert mail.html.index("Item B") < mail.html.index("Item C")  # by confidence
        assert 'src="https://cdn.example/C.jpg" alt="A tin of shoe cream"' in mail.html
        assert 'alt="Item B"' in mail.html  # no alt text written: the title
        assert 'src="https://kafeterija.example/logo.png"' in mail.html
    # the price in each language's own way: grouping and where the currency goes
    assert re.search(r"Item C \(RSD\s?1,990(\.00)?\)", english.text)
    assert re.search(r"Item C \(1\.990(,00)?\sRSD\)", serbian.text)
    assert "Take a look" in english.html and "Pogledajte" in serbian.html
    assert english.locale == "en" and serbian.locale == "sr"

    link = re.search(r'href="(http[^"]+/g/[^"]+)"', serbian.html).group(1)
    answer = client.get(link[link.index("/g/") :])
    assert answer.status_code == 302
    assert answer.headers["Location"] == "https://kafeterija.example/products/item-b"
    clicks = rows(runtime.engine, link_clicks)
    assert [c.kind for c in clicks] == ["product"]


def test_the_scheduler_has_a_worker_recount_the_model(runtime, shop_id, scheduler, work, clock):
    store_history(runtime, shop_id, HISTORY, [product(r) for r in "ABC"])
    scheduler.tick(clock.now())
    assert runtime.queue("actions").count == 1
    work()
    with runtime.engine.connect() as conn:
        assert len(recommend.top_pairs(conn, shop_id)) == 2
    scheduler.tick(clock.now() + timedelta(minutes=5))  # within the hour: nothing more
    assert runtime.queue("actions").count == 0
