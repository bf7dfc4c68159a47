# ruff: noqa: E501  (a table of hand-written sentences; one pair per line reads better than wrapped strings)
"""Build verifier_pairs.jsonl: hand-labelled (answer sentence, cited chunk, supported?) pairs on real chunks.

The chunks are what ingestion makes of the sample documents (samples/kb/support, samples/kb/experts) and of
three pages of the Python FAQ (Python Software Foundation, PSF licence), cut with `ingest.parse` and
`ingest.chunk.split` at 200 tokens; each chunk is located by a phrase it contains. The sentences and labels are
written by hand below. The tests read only the JSONL, which carries every chunk's text and its source.

    .venv/bin/python tests/retrieval/data/build_verifier_pairs.py [path to python-faq-html]

Labels: `supported` means a reader of the chunk's BODY alone (not its title, not its headings) would accept
the sentence as a claim the chunk makes. Junk that says nothing checkable (a heading echoed, "The answer is
no", "The source is: ...", a repeat of an earlier sentence, a fragment cut off by the token cap) is not
supported whatever its words. `context` is the answer text before the sentence, when the kind needs one.
Pairs alternate between the dev half (thresholds are chosen on it) and the held-out half, within each kind.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from lorag.ingest.chunk import split
from lorag.ingest.parse import parse

ROOT = Path(__file__).resolve().parents[3]
OUT = Path(__file__).with_name("verifier_pairs.jsonl")
FAQ = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/data/python-faq-html")
FAQ_SOURCE = "Python FAQ ({}), docs.python.org 3.11, (c) Python Software Foundation, PSF License"

# name: (file, a phrase the chunk contains)
CHUNKS = {
    "tip_where": ("samples/kb/support/tipping.md", "100% of every tip goes to the courier"),
    "tip_how": ("samples/kb/support/tipping.md", "tap Other to enter an amount"),
    "tip_change": ("samples/kb/support/tipping.md", "raise or lower a tip"),
    "tip_group": ("samples/kb/support/tipping.md", "only the host can add a tip"),
    "tip_late": ("samples/kb/support/tipping.md", "not reduced automatically when an order is late"),
    "group_orders": ("samples/kb/support/placing_an_order.md", "Up to 10 participants"),
    "min_order": ("samples/kb/support/placing_an_order.md", "The minimum food subtotal for a delivery order"),
    "plus_price": ("samples/kb/support/dashbite_plus.md", "Monthly: €5.99 per month."),
    "plus_trial": ("samples/kb/support/dashbite_plus.md", "30-day free trial"),
    "plus_refund": ("samples/kb/support/dashbite_plus.md", "full refund of your latest Plus payment"),
    "plus_fail": ("samples/kb/support/dashbite_plus.md", "If a renewal payment fails"),
    "service_fee": ("samples/kb/support/fees_explained.txt", "It is 5% of the food subtotal"),
    "small_fee": ("samples/kb/support/fees_explained.txt", "small-order fee of EUR 1.50"),
    "gift_spend": ("samples/kb/support/gift_cards.txt", "used automatically at checkout, after any Dashbite"),
    "gift_valid": ("samples/kb/support/gift_cards.txt", "valid for 3 years from the date it was bought"),
    "gift_business": ("samples/kb/support/gift_cards.txt", "20 or more gift cards at once"),
    "alcohol_who": ("samples/kb/support/alcohol_orders.md", "You must be 18 or older to order alcohol"),
    "alcohol_id": ("samples/kb/support/alcohol_orders.md", "Photos or copies of ID are not accepted"),
    "alcohol_hours": ("samples/kb/support/alcohol_orders.md", "not later than 01:00"),
    "cancel_after": ("samples/kb/support/cancelling_an_order.md", "a cancellation fee of 50% of the food subtotal"),
    "cancel_pickup": ("samples/kb/support/cancelling_an_order.md", "Once the status is Picked up"),
    "cancel_restaurant": ("samples/kb/support/cancelling_an_order.md", "we add a €3 Dashbite Credit"),
    "late_what": ("samples/kb/support/late_deliveries.md", "you receive a €5 Dashbite Credit"),
    "scheduled_ahead": ("samples/kb/support/scheduled_orders.md", "up to 7 days in advance"),
    "scheduled_cancel": ("samples/kb/support/scheduled_orders.md", "free of charge up to 60 minutes"),
    "photos": ("samples/kb/support/missing_or_wrong_items.md", "You can upload up to 3 photos per report"),
    "redelivery": ("samples/kb/support/missing_or_wrong_items.md", "within 4 km of your address"),
    "reset_link": ("samples/kb/support/password_reset.md", "valid for 30 minutes and can be used only once"),
    "payment_methods": ("samples/kb/support/payment_methods.md", "Cash is not accepted"),
    "courier_insurance": ("samples/kb/support/courier_safety.md", "accident insurance covers you at no cost"),
    "grace_period": ("samples/kb/support/deleting_your_account.md", "For 14 days you can change your mind"),
    "backoffice": ("samples/kb/experts/data_access_policy.md", "Backoffice shows masked data by default"),
    "gps": ("samples/kb/experts/data_access_policy.md", "Courier GPS traces are kept for 90 days"),
    "police": ("samples/kb/experts/data_access_policy.md", "Never give personal data to police"),
    "oncall_shifts": ("samples/kb/experts/oncall_rota_rules.md", "A shift lasts one week"),
    "oncall_limits": ("samples/kb/experts/oncall_rota_rules.md", "Nobody is primary more than 2 weeks"),
    "psp_step1": ("samples/kb/experts/runbook_payment_provider_outage.md", "Check the Grafana dashboard"),
    "psp_failover": ("samples/kb/experts/runbook_payment_provider_outage.md", "Propagation takes about 60 seconds"),
    "py_stable": ("faq:general.html", "Bugfix releases, indicated by a third component"),
    "py_versions": ("faq:general.html", "You may also find version numbers with"),
    "py_debugger": ("faq:programming.html", "The pdb module is a simple but adequate"),
}

S, U = True, False
# (chunk, kind, supported, sentence as the model wrote it, answer text before it)
PAIRS: list[tuple[str, str, bool, str, str]] = [
    # tipping: where the tip goes
    ("tip_where", "extractive", S, "100% of every tip goes to the courier who delivered your order [1].", ""),
    ("tip_where", "extractive", S, "Dashbite takes no commission or fee on tips [1].", ""),
    ("tip_where", "paraphrase", S, "The courier who brought your food receives the whole tip [1].", ""),
    ("tip_where", "paraphrase", S, "Tips do not lower the amount Dashbite pays the courier for a delivery [1].", ""),
    ("tip_where", "wrong_number", U, "90% of every tip goes to the courier who delivered your order [1].", ""),
    ("tip_where", "negation", U, "Dashbite takes a commission on tips [1].", ""),
    ("tip_where", "unsaid", U, "Tips are paid to the courier in cash at the end of each shift [1].", ""),
    ("tip_where", "heading_echo", U, "Where your tip goes [1].", ""),
    ("tip_where", "repeat", U, "Dashbite takes no commission or fee on tips [1].",
     "Dashbite takes no commission or fee on tips [1]."),
    # tipping: how
    ("tip_how", "extractive", S, "At checkout you can choose €1, €2 or €3, or tap Other to enter an amount of up to €50 [1].",
     ""),
    ("tip_how", "extractive", S, "The tip is charged together with your order [1].", ""),
    ("tip_how", "paraphrase", S, "A custom tip can be at most €50 [1].", ""),
    ("tip_how", "wrong_number", U, "You can enter a custom tip of up to €100 [1].", ""),
    ("tip_how", "unsaid", U, "The tip is charged separately after the delivery [1].", ""),
    ("tip_how", "heading_echo", U, "How to tip [1].", ""),
    ("tip_how", "truncated", U, "At checkout you can choose €1, €2 or €3, or tap", ""),
    ("tip_how", "answer_is", U, "The answer is yes [1].", ""),
    # tipping: change after delivery
    ("tip_change", "extractive", S, "You can add, raise or lower a tip up to 1 hour after delivery [1].", ""),
    ("tip_change", "extractive", S, "If you cancel an order, the tip is always refunded in full [1].", ""),
    ("tip_change", "paraphrase", S, "Within an hour of delivery you can still change the tip [1].", ""),
    ("tip_change", "paraphrase", S, "Cancelled orders get their tip back in full [1].", ""),
    ("tip_change", "wrong_number", U, "You can change a tip up to 24 hours after delivery [1].", ""),
    ("tip_change", "negation", U, "If you cancel an order, the tip is not refunded [1].", ""),
    ("tip_change", "unsaid", U, "After one hour you can ask support to change the tip [1].", ""),
    ("tip_change", "repeat", U, "You can add, raise or lower a tip up to 1 hour after delivery [1].",
     "You can add, raise or lower a tip up to 1 hour after delivery [1]."),
    ("tip_change", "truncated", U, "You can add, raise or lower a tip up to 1 hour after",
     "Open the order and tap Tip [1]."),
    ("tip_change", "lead_in", S, "According to the source, the tip is final after one hour [1].", ""),
    # tipping: group orders
    ("tip_group", "extractive", S, "On a group order only the host can add a tip, because the host pays for the whole order [1].",
     ""),
    ("tip_group", "paraphrase", S, "Only the person hosting a group order can tip [1].", ""),
    ("tip_group", "unsaid", U, "On a group order every participant can add their own tip [1].", ""),
    ("tip_group", "unsaid", U, "Tips on group orders are split between the participants [1].", ""),
    ("tip_group", "source_echo", U, "The source is: Placing an order — Group orders [1] The source is: Tipping on group orders [2]",
     ""),
    ("tip_group", "heading_echo", U, "Tipping on group orders [1].", ""),
    ("tip_group", "title_only", U, "Dashbite has a guide to tipping your courier [1].", ""),
    # tipping: late orders
    ("tip_late", "extractive", S, "A tip is not reduced automatically when an order is late [1].", ""),
    ("tip_late", "extractive", S, "If the entire order never arrived, the tip is refunded along with everything else [1].", ""),
    ("tip_late", "paraphrase", S, "When an order never arrives, you get the tip back with the rest of the money [1].", ""),
    ("tip_late", "negation", U, "A tip is reduced automatically when an order is late [1].", ""),
    ("tip_late", "unsaid", U, "A late order gets a tip refund of 50% [1].", ""),
    ("tip_late", "no_claim", U, "It depends [1].", ""),
    # group orders
    ("group_orders", "extractive", S, "Up to 10 participants (including the host) can join [1].", ""),
    ("group_orders", "extractive", S, "The shared basket locks automatically 30 minutes after it was created [1].", ""),
    ("group_orders", "paraphrase", S, "Splitting the bill between participants is not supported in the app [1].", ""),
    ("group_orders", "paraphrase", S, "A group order can have at most ten people, the host included [1].", ""),
    ("group_orders", "paraphrase", S, "The host shares a link so friends can add dishes to one basket [1].", ""),
    ("group_orders", "wrong_number", U, "Up to 20 participants can join a group order [1].", ""),
    ("group_orders", "wrong_number", U, "The shared basket locks automatically 60 minutes after it was created [1].", ""),
    ("group_orders", "negation", U, "Splitting the bill between participants is supported in the app [1].", ""),
    ("group_orders", "unsaid", U, "Each participant pays for their own dishes in a group order [1].", ""),
    ("group_orders", "unsaid", U, "Group orders get free delivery for every participant [1].", ""),
    ("group_orders", "source_echo", U, "The source is: Placing an order — Group orders [1].", ""),
    ("group_orders", "repeat", U, "Up to 10 participants (including the host) can join [1].",
     "Up to 10 participants (including the host) can join [1]. The host pays for the whole order [1]."),
    ("group_orders", "truncated", U, "The shared basket locks automatically 30 minutes after it",
     "Up to 10 participants can join [1]."),
    # minimum order
    ("min_order", "extractive", S, "The minimum food subtotal for a delivery order is €8.00 [1].", ""),
    ("min_order", "extractive", S, "Smaller baskets cannot be checked out [1].", ""),
    ("min_order", "paraphrase", S, "You cannot check out a delivery basket under €8.00 [1].", ""),
    ("min_order", "wrong_number", U, "The minimum food subtotal for a delivery order is €10.00 [1].", ""),
    ("min_order", "negation", U, "Smaller baskets can be checked out [1].", ""),
    ("min_order", "heading_echo", U, "Minimum order value [1].", ""),
    ("min_order", "answer_is", U, "The answer is no [1].", ""),
    # Plus price
    ("plus_price", "extractive", S, "Monthly: €5.99 per month [1].", ""),
    ("plus_price", "extractive", S, "iDEAL is not available for subscriptions [1].", ""),
    ("plus_price", "paraphrase", S, "A yearly Plus membership costs €59.90 [1].", ""),
    ("plus_price", "paraphrase", S, "Students pay €2.99 a month for Plus [1].", ""),
    ("plus_price", "abbreviation", S, "You can pay for Plus with a card, PayPal or gift card balance, i.e. not with iDEAL [1].",
     ""),
    ("plus_price", "wrong_number", U, "Plus costs €4.99 per month [1].", ""),
    ("plus_price", "wrong_number", U, "Student status is checked again every 6 months [1].", ""),
    ("plus_price", "negation", U, "You can pay for Plus with iDEAL [1].", ""),
    ("plus_price", "unsaid", U, "Plus can be paid with Dashbite Credit [1].", ""),
    ("plus_price", "heading_echo", U, "Price [1].", ""),
    ("plus_price", "repeat", U, "Monthly: €5.99 per month [1].",
     "Monthly: €5.99 per month [1]. Monthly: €5.99 per month [1]."),
    # Plus trial
    ("plus_trial", "extractive", S, "New members get a 30-day free trial [1].", ""),
    ("plus_trial", "extractive", S, "We remind you by email 3 days before the trial ends [1].", ""),
    ("plus_trial", "paraphrase", S, "Each account can use the free trial only once [1].", ""),
    ("plus_trial", "paraphrase", S, "If you do not cancel, the first payment is taken on day 31 [1].", ""),
    ("plus_trial", "wrong_number", U, "New members get a 14-day free trial [1].", ""),
    ("plus_trial", "negation", U, "You are not reminded before the trial ends [1].", ""),
    ("plus_trial", "unsaid", U, "The free trial can be extended by contacting support [1].", ""),
    ("plus_trial", "truncated", U, "New members get a 30-day free", ""),
    ("plus_trial", "lead_in", S, "Based on the sources, new members get a 30-day free trial [1].", ""),
    # Plus refunds
    ("plus_refund", "extractive", S,
     "You can get a full refund of your latest Plus payment if you cancel within 14 days of that payment [1].", ""),
    ("plus_refund", "paraphrase", S, "Plus payments are not refunded for partial months or years [1].", ""),
    ("plus_refund", "wrong_number", U, "You can get a full refund of your latest Plus payment within 30 days [1].", ""),
    ("plus_refund", "negation", U, "Plus payments are refunded for partial months [1].", ""),
    ("plus_refund", "unsaid", U, "Plus refunds are paid as Dashbite Credit [1].", ""),
    ("plus_refund", "heading_echo", U, "Refunds for Plus [1].", ""),
    ("plus_refund", "answer_is", U, "The answer is: it depends [1].", ""),
    # Plus payment fails
    ("plus_fail", "extractive", S, "If a renewal payment fails, we try again after 3 days [1].", ""),
    ("plus_fail", "extractive", S, "Benefits do not apply while Plus is paused [1].", ""),
    ("plus_fail", "paraphrase", S, "After a second failed payment, Plus stays paused until you update your payment method [1].",
     ""),
    ("plus_fail", "wrong_number", U, "If a renewal payment fails, we try again after 7 days [1].", ""),
    ("plus_fail", "negation", U, "Benefits still apply while Plus is paused [1].", ""),
    ("plus_fail", "unsaid", U, "If a renewal payment fails, Plus is cancelled immediately [1].", ""),
    ("plus_fail", "heading_echo", U, "If a payment fails [1].", ""),
    # service fee
    ("service_fee", "extractive", S,
     "It is 5% of the food subtotal, with a minimum of EUR 0.99 and a maximum of EUR 3.99 per order [1].", ""),
    ("service_fee", "extractive", S, "Pickup orders have a service fee of 2.5%, with the same minimum and maximum [1].", ""),
    ("service_fee", "paraphrase", S, "The service fee is 5% of the food subtotal [1].", ""),
    ("service_fee", "paraphrase", S, "The service fee is never more than EUR 3.99 per order [1].", ""),
    ("service_fee", "abbreviation", S, "The service fee helps pay for support, payment processing etc. and the app [1].", ""),
    ("service_fee", "abbreviation", S, "For pickup orders the rate is 2.5% instead of 5% [1].", ""),
    ("service_fee", "wrong_number", U, "The service fee is 10% of the food subtotal [1].", ""),
    ("service_fee", "wrong_number", U, "Pickup orders have a service fee of 3.5% [1].", ""),
    ("service_fee", "unsaid", U, "The service fee is waived on orders above EUR 50 [1].", ""),
    ("service_fee", "heading_echo", U, "Service fee [1].", ""),
    ("service_fee", "title_only", U, "Dashbite explains its fees [1].", ""),
    ("service_fee", "repeat", U, "The service fee is 5% of the food subtotal [1].",
     "The service fee is 5% of the food subtotal [1]. The service fee is 5% of the food subtotal [1]. "
     "The service fee is 5% of the food subtotal [1]."),
    ("service_fee", "truncated", U, "The service fee is 5% of the food subtotal, with a minimum of",
     "The service fee helps pay for customer support [1]."),
    # small-order fee
    ("small_fee", "extractive", S, "If the food subtotal is below EUR 15.00, a small-order fee of EUR 1.50 is added [1].", ""),
    ("small_fee", "extractive", S, "It is the same in every city and applies to Plus members too [1].", ""),
    ("small_fee", "paraphrase", S, "Plus members also pay the small-order fee [1].", ""),
    ("small_fee", "wrong_number", U, "A small-order fee of EUR 2.50 is added below EUR 15.00 [1].", ""),
    ("small_fee", "negation", U, "The small-order fee does not apply to Plus members [1].", ""),
    ("small_fee", "unsaid", U, "The small-order fee is higher in Amsterdam [1].", ""),
    ("small_fee", "heading_echo", U, "Small-order fee [1].", ""),
    # gift cards: spending
    ("gift_spend", "extractive", S, "Gift card balance cannot be used to buy other gift cards [1].", ""),
    ("gift_spend", "extractive", S, "It can pay for food, fees, tips and Dashbite Plus [1].", ""),
    ("gift_spend", "paraphrase", S, "Your gift card balance is applied at checkout after any Dashbite Credit [1].", ""),
    ("gift_spend", "paraphrase", S, "If the balance is not enough, the rest goes to your payment method [1].", ""),
    ("gift_spend", "negation", U, "Gift card balance can be used to buy other gift cards [1].", ""),
    ("gift_spend", "unsaid", U, "Gift card balance is used before any Dashbite Credit [1].", ""),
    ("gift_spend", "heading_echo", U, "Spending your balance [1].", ""),
    ("gift_spend", "no_claim", U, "Yes [1].", ""),
    # gift cards: validity
    ("gift_valid", "extractive", S, "A gift card is valid for 3 years from the date it was bought [1].", ""),
    ("gift_valid", "extractive", S, "Unused gift cards cannot be exchanged for cash, except where the law requires it [1].",
     ""),
    ("gift_valid", "paraphrase", S, "Refunds on gift card orders go back to the gift card balance with the original expiry date [1].",
     ""),
    ("gift_valid", "wrong_number", U, "A gift card is valid for 5 years from the date it was bought [1].", ""),
    ("gift_valid", "negation", U, "Unused gift cards can be exchanged for cash [1].", ""),
    ("gift_valid", "unsaid", U, "The validity of a gift card can be extended once [1].", ""),
    ("gift_valid", "heading_echo", U, "Refunds on orders paid with a gift card [1].", ""),
    # business gift cards
    ("gift_business", "extractive", S,
     "Companies that want to buy 20 or more gift cards at once can order them through Dashbite for Business [1].", ""),
    ("gift_business", "paraphrase", S, "A business order of gift cards comes with one invoice for the whole order [1].", ""),
    ("gift_business", "wrong_number", U, "Companies can order 50 or more gift cards through Dashbite for Business [1].", ""),
    ("gift_business", "unsaid", U, "Business gift cards come with a 10% discount [1].", ""),
    ("gift_business", "heading_echo", U, "Business gift cards [1].", ""),
    # alcohol
    ("alcohol_who", "extractive", S, "You must be 18 or older to order alcohol and to receive it [1].", ""),
    ("alcohol_who", "paraphrase", S, "Only people aged 18 and over can order or receive alcohol [1].", ""),
    ("alcohol_who", "wrong_number", U, "You must be 21 or older to order alcohol [1].", ""),
    ("alcohol_who", "unsaid", U, "Alcohol orders need a verified ID uploaded in the app [1].", ""),
    ("alcohol_who", "heading_echo", U, "Who can order alcohol [1].", ""),
    ("alcohol_id", "extractive", S, "Photos or copies of ID are not accepted [1].", ""),
    ("alcohol_id", "extractive", S, "Couriers check the ID of the person receiving the order every time, regardless of age [1].",
     ""),
    ("alcohol_id", "paraphrase", S, "The courier only looks at the date of birth and does not scan or store anything [1].",
     ""),
    ("alcohol_id", "abbreviation", S, "Accepted documents are e.g. a passport, a Dutch or EU identity card, or a driving licence [1].",
     ""),
    ("alcohol_id", "negation", U, "Photos of ID are accepted [1].", ""),
    ("alcohol_id", "unsaid", U, "The courier scans your ID and stores a copy [1].", ""),
    ("alcohol_id", "unsaid", U, "Couriers only check ID if you look younger than 25 [1].", ""),
    ("alcohol_id", "heading_echo", U, "ID check at the door [1].", ""),
    ("alcohol_hours", "extractive", S, "Alcohol is sold until the restaurant closes, but not later than 01:00 [1].", ""),
    ("alcohol_hours", "wrong_number", U, "Alcohol is sold until 02:00 at the latest [1].", ""),
    ("alcohol_hours", "heading_echo", U, "Delivery hours for alcohol [1].", ""),
    # cancelling
    ("cancel_after", "extractive", S, "If you cancel at this stage, a cancellation fee of 50% of the food subtotal applies [1].",
     ""),
    ("cancel_after", "extractive", S, "The delivery fee, service fee, small-order fee and tip are refunded in full [1].", ""),
    ("cancel_after", "paraphrase", S, "Cancelling once the restaurant has accepted costs half of the food subtotal [1].", ""),
    ("cancel_after", "abbreviation", S, "Cancelling after acceptance costs €12.00 on a €24.00 food subtotal [1].", ""),
    ("cancel_after", "wrong_number", U, "A cancellation fee of 25% of the food subtotal applies after acceptance [1].", ""),
    ("cancel_after", "negation", U, "The delivery fee is not refunded when you cancel after acceptance [1].", ""),
    ("cancel_after", "unsaid", U, "The cancellation fee goes to the courier [1].", ""),
    ("cancel_after", "heading_echo", U, "After the restaurant accepts [1].", ""),
    ("cancel_after", "repeat", U, "A cancellation fee of 50% of the food subtotal applies [1].",
     "A cancellation fee of 50% of the food subtotal applies [1]."),
    ("cancel_pickup", "extractive", S, "Once the status is Picked up, the order cannot be cancelled [1].", ""),
    ("cancel_pickup", "paraphrase", S, "After the courier has picked up the order, cancelling it gives no refund [1].", ""),
    ("cancel_pickup", "negation", U, "Once the status is Picked up, the order can still be cancelled [1].", ""),
    ("cancel_pickup", "unsaid", U, "After pickup you can cancel for a 75% fee [1].", ""),
    ("cancel_pickup", "answer_is", U, "The answer is no, you cannot [1].", ""),
    ("cancel_restaurant", "extractive", S, "Dashbite may also cancel if no courier can be found [1].", ""),
    ("cancel_restaurant", "paraphrase", S, "When the restaurant cancels, you are refunded in full automatically and get €3 of Dashbite Credit [1].",
     ""),
    ("cancel_restaurant", "wrong_number", U, "We add a €5 Dashbite Credit to your account as an apology [1].", ""),
    ("cancel_restaurant", "negation", U, "You need to contact us to get the refund [1].", ""),
    ("cancel_restaurant", "unsaid", U, "The restaurant pays a fine when it cancels an order [1].", ""),
    # late deliveries
    ("late_what", "extractive", S, "For a late order you receive a €5 Dashbite Credit, added automatically to your account within 24 hours of delivery [1].",
     ""),
    ("late_what", "extractive", S, "There is at most one late-delivery credit per order [1].", ""),
    ("late_what", "paraphrase", S, "You do not have to contact us to get the late-delivery credit [1].", ""),
    ("late_what", "wrong_number", U, "For a late order you receive a €10 Dashbite Credit [1].", ""),
    ("late_what", "negation", U, "You need to contact us to receive the late-delivery credit [1].", ""),
    ("late_what", "unsaid", U, "A late order is refunded in full to your card [1].", ""),
    ("late_what", "heading_echo", U, "What you get [1].", ""),
    ("late_what", "truncated", U, "For a late order you receive a €5 Dashbite Credit, added automatically to",
     "There is at most one late-delivery credit per order [1]."),
    # scheduled orders
    ("scheduled_ahead", "extractive", S, "You can schedule an order up to 7 days in advance [1].", ""),
    ("scheduled_ahead", "paraphrase", S, "Delivery slots are 15 minutes long [1].", ""),
    ("scheduled_ahead", "abbreviation", S, "Delivery times are offered in 15-minute slots, e.g. 18:30–18:45 [1].", ""),
    ("scheduled_ahead", "wrong_number", U, "You can schedule an order up to 14 days in advance [1].", ""),
    ("scheduled_ahead", "unsaid", U, "Scheduled orders have no delivery fee [1].", ""),
    ("scheduled_ahead", "heading_echo", U, "How far ahead you can schedule [1].", ""),
    ("scheduled_cancel", "extractive", S, "You can cancel a scheduled order free of charge up to 60 minutes before the start of the slot [1].",
     ""),
    ("scheduled_cancel", "paraphrase", S, "Within the last 60 minutes before the slot, the normal cancellation rules apply [1].",
     ""),
    ("scheduled_cancel", "wrong_number", U, "You can cancel a scheduled order free of charge up to 30 minutes before the slot [1].",
     ""),
    ("scheduled_cancel", "negation", U, "You cannot cancel a scheduled order free of charge [1].", ""),
    ("scheduled_cancel", "source_echo", U, "The source is: Scheduled orders — Cancelling a scheduled order [1].", ""),
    # missing items
    ("photos", "extractive", S, "You can upload up to 3 photos per report [1].", ""),
    ("photos", "paraphrase", S, "Photos are not needed for missing items [1].", ""),
    ("photos", "paraphrase", S, "A good photo shows the dish together with the order label [1].", ""),
    ("photos", "wrong_number", U, "You can upload up to 5 photos per report [1].", ""),
    ("photos", "negation", U, "We ask for photos for missing items [1].", ""),
    ("photos", "unsaid", U, "Photos are shared with the courier [1].", ""),
    ("photos", "heading_echo", U, "Photos [1].", ""),
    ("redelivery", "extractive", S, "Redelivery is free [1].", ""),
    ("redelivery", "paraphrase", S, "Instead of a refund, you can ask for the right dish to be brought to you when an item was wrong [1].",
     ""),
    ("redelivery", "wrong_number", U, "Redelivery is offered when the restaurant is within 10 km of your address [1].", ""),
    ("redelivery", "unsaid", U, "Redelivery costs the normal delivery fee [1].", ""),
    ("redelivery", "unsaid", U, "Redelivery is also offered for missing items [1].", ""),
    ("redelivery", "source_echo", U, "Source: Missing or wrong items — Redelivery of a wrong dish [1].", ""),
    # password reset
    ("reset_link", "extractive", S, "The link is valid for 30 minutes and can be used only once [1].", ""),
    ("reset_link", "extractive", S, "Resetting your password logs you out on all other devices [1].", ""),
    ("reset_link", "paraphrase", S, "The reset link expires after half an hour [1].", ""),
    ("reset_link", "wrong_number", U, "The reset link is valid for 24 hours [1].", ""),
    ("reset_link", "negation", U, "Resetting your password does not log you out on other devices [1].", ""),
    ("reset_link", "unsaid", U, "The reset link is sent by text message [1].", ""),
    ("reset_link", "repeat", U, "The link is valid for 30 minutes and can be used only once [1].",
     "We email you a reset link [1]. The link is valid for 30 minutes and can be used only once [1]."),
    ("reset_link", "lead_in", S, "According to the source [1], resetting your password logs you out on all other devices.",
     ""),
    # payment methods
    ("payment_methods", "extractive", S, "Cash is not accepted, neither for the order nor as payment to the courier [1].", ""),
    ("payment_methods", "paraphrase", S, "You can pay with Apple Pay, Google Pay or PayPal [1].", ""),
    ("payment_methods", "paraphrase", S, "Visa, Mastercard, Maestro and American Express cards are accepted [1].", ""),
    ("payment_methods", "negation", U, "Cash is accepted for the order [1].", ""),
    ("payment_methods", "unsaid", U, "Bank transfers can be used to pay for orders [1].", ""),
    ("payment_methods", "heading_echo", U, "Accepted payment methods [1].", ""),
    ("payment_methods", "no_claim", U, "Sure [1]!", ""),
    # courier insurance
    ("courier_insurance", "extractive", S, "It does not cover damage to your own bike or vehicle [1].", ""),
    ("courier_insurance", "paraphrase", S, "Couriers are covered by Dashbite's accident insurance for free while they are online [1].",
     ""),
    ("courier_insurance", "paraphrase", S, "Accidents must be reported to the safety team within 24 hours [1].", ""),
    ("courier_insurance", "wrong_number", U, "Report any accident to the safety team within 48 hours [1].", ""),
    ("courier_insurance", "negation", U, "The insurance covers damage to your own bike [1].", ""),
    ("courier_insurance", "unsaid", U, "The insurance is deducted from your weekly earnings [1].", ""),
    ("courier_insurance", "heading_echo", U, "Insurance [1].", ""),
    ("courier_insurance", "title_only", U, "Courier safety is a priority at Dashbite [1].", ""),
    # deleting your account
    ("grace_period", "extractive", S, "Your account is deactivated immediately but not deleted right away [1].", ""),
    ("grace_period", "paraphrase", S, "Logging in again within 14 days cancels the deletion request [1].", ""),
    ("grace_period", "negation", U, "Your account is deleted right away [1].", ""),
    ("grace_period", "unsaid", U, "During the grace period you can still place orders [1].", ""),
    ("grace_period", "heading_echo", U, "The 14-day grace period [1].", ""),
    # experts: data access
    ("backoffice", "extractive", S, "Backoffice shows masked data by default [1].", ""),
    ("backoffice", "extractive", S, "Agents who reveal more than 50 phone numbers or email addresses in a single shift are flagged automatically to the Security team for review [1].",
     ""),
    ("backoffice", "paraphrase", S, "Masked phone numbers show only their last 3 digits [1].", ""),
    ("backoffice", "wrong_number", U, "Agents who reveal more than 100 phone numbers in a shift are flagged [1].", ""),
    ("backoffice", "unsaid", U, "Agents can export customer data from Backoffice without approval [1].", ""),
    ("backoffice", "title_only", U, "There is an internal policy on access to customer and courier data [1].", ""),
    ("backoffice", "heading_echo", U, "Backoffice [1].", ""),
    ("gps", "extractive", S, "Courier GPS traces are kept for 90 days [1].", ""),
    ("gps", "paraphrase", S, "GPS data may not be used to judge a courier's general performance [1].", ""),
    ("gps", "wrong_number", U, "Courier GPS traces are kept for 30 days [1].", ""),
    ("gps", "negation", U, "Using GPS data to evaluate a courier's performance is allowed [1].", ""),
    ("gps", "unsaid", U, "Couriers can download their own GPS traces [1].", ""),
    ("gps", "title_only", U, "Access to courier data is governed by an internal policy [1].", ""),
    ("police", "extractive", S, "Ask for a written request and forward it to Legal [1].", ""),
    ("police", "paraphrase", S, "Legal replies within 5 business days, or on the same day when a life is in immediate danger [1].",
     ""),
    ("police", "wrong_number", U, "Legal answers within 10 business days [1].", ""),
    ("police", "negation", U, "You may give personal data to police directly if they visit [1].", ""),
    ("police", "unsaid", U, "Police requests must be approved by the DPO [1].", ""),
    # experts: on-call
    ("oncall_shifts", "extractive", S, "A shift lasts one week, from Monday 10:00 to the next Monday 10:00 (Amsterdam time) [1].",
     ""),
    ("oncall_shifts", "extractive", S, "The rotation lead does not need to approve swaps [1].", ""),
    ("oncall_shifts", "paraphrase", S, "Handover is a 15-minute call on Monday at 10:00 [1].", ""),
    ("oncall_shifts", "wrong_number", U, "Handover happens in a 30-minute call at Monday 10:00 [1].", ""),
    ("oncall_shifts", "negation", U, "The rotation lead needs to approve swaps [1].", ""),
    ("oncall_shifts", "unsaid", U, "Swaps must be approved by the engineering manager [1].", ""),
    ("oncall_shifts", "title_only", U, "Dashbite has on-call rota rules for Engineering [1].", ""),
    ("oncall_limits", "extractive", S, "Nobody is primary more than 2 weeks in any 6-week period [1].", ""),
    ("oncall_limits", "paraphrase", S, "New engineers cannot be primary during their first 8 weeks at Dashbite [1].", ""),
    ("oncall_limits", "wrong_number", U, "Nobody is primary more than 3 weeks in any 6-week period [1].", ""),
    ("oncall_limits", "unsaid", U, "Engineers are paid double for night pages [1].", ""),
    ("oncall_limits", "heading_echo", U, "Limits to protect people [1].", ""),
    ("oncall_limits", "title_only", U, "The on-call limits are there to protect people [1].", ""),
    # experts: payment provider outage
    ("psp_step1", "extractive", S, "If more than 50% of authorisations fail, declare SEV-1 in #inc-war-room and page the Incident Commander [1].",
     ""),
    ("psp_step1", "paraphrase", S, "When only one payment method is failing, the incident is SEV-2 [1].", ""),
    ("psp_step1", "wrong_number", U, "If more than 30% of authorisations fail, declare SEV-1 [1].", ""),
    ("psp_step1", "unsaid", U, "A single failing payment method must be reported to the VP Engineering [1].", ""),
    ("psp_step1", "title_only", U, "The outage must be confirmed and declared in the first 5 minutes [1].", ""),
    ("psp_failover", "extractive", S, "Propagation takes about 60 seconds [1].", ""),
    ("psp_failover", "extractive", S, "KassaPay cannot refund Paystream transactions [1].", ""),
    ("psp_failover", "paraphrase", S, "The on-call engineer decides on failover without needing a manager's approval [1].",
     ""),
    ("psp_failover", "wrong_number", U, "The auth success rate for KassaPay should be above 99% within 5 minutes [1].", ""),
    ("psp_failover", "negation", U, "Refunds on older orders should be retried manually [1].", ""),
    ("psp_failover", "title_only", U, "Cards and wallets are failed over to KassaPay [1].", ""),
    # Python FAQ
    ("py_stable", "extractive", S, "As of version 3.9, Python will have a major new release every 12 months (PEP 602) [1].",
     ""),
    ("py_stable", "abbreviation", S, "Bugfix releases are indicated by a third component of the version number, e.g. 3.5.3 or 3.6.2 [1].",
     ""),
    ("py_stable", "paraphrase", S, "Python 2.x is no longer maintained, although it is still widely used [1].", ""),
    ("py_stable", "wrong_number", U, "As of version 3.11, Python has a major new release every 6 months [1].", ""),
    ("py_stable", "negation", U, "Python 2.x is still maintained [1].", ""),
    ("py_stable", "unsaid", U, "Bugfix releases may change interfaces to improve performance [1].", ""),
    ("py_stable", "heading_echo", U, "How stable is Python [1]?", ""),
    ("py_versions", "abbreviation", S, "Versions with a “+” suffix, e.g. “2.2+”, are unreleased versions built directly from the CPython development repository [1].",
     ""),
    ("py_versions", "paraphrase", S, "All versions labelled 2.0aN come before the 2.0bN versions [1].", ""),
    ("py_versions", "wrong_number", U, "After a final minor release, the version becomes the “a1” version [1].", ""),
    ("py_versions", "unsaid", U, "Release candidates are published every two weeks [1].", ""),
    ("py_debugger", "extractive", S, "The pdb module is a simple but adequate console-mode debugger for Python [1].", ""),
    ("py_debugger", "paraphrase", S, "IDLE includes a graphical debugger [1].", ""),
    ("py_debugger", "abbreviation", S, "PythonWin is a Python IDE that includes a GUI debugger based on pdb, i.e. the standard debugger [1].",
     ""),
    ("py_debugger", "negation", U, "The pdb module is not part of the standard Python library [1].", ""),
    ("py_debugger", "unsaid", U, "PythonWin is only available on macOS [1].", ""),
    ("py_debugger", "title_only", U, "Python has a source code level debugger with single-stepping [1].", ""),
]


def load_chunks(table: dict[str, tuple[str, str]] = CHUNKS) -> dict[str, dict[str, object]]:
    """Each named chunk of `table` as ingestion cuts it, with the title and heading path the prompt shows; a file
    named "faq:NAME" is a page of the Python FAQ folder."""
    found: dict[str, dict[str, object]] = {}
    for name, (file, phrase) in table.items():
        path = FAQ / file.removeprefix("faq:") if file.startswith("faq:") else ROOT / file
        doc = parse(path, max_bytes=10_000_000)
        chunks = split(doc, count_tokens=lambda text: int(len(text.split()) * 1.3), chunk_tokens=200,
                       overlap_tokens=32)
        chunk = next(c for c in chunks if phrase in c.text)
        source = FAQ_SOURCE.format(path.name) if file.startswith("faq:") else file
        found[name] = {"title": doc.title, "section": list(chunk.section_path), "text": chunk.text, "source": source}
    return found


def main() -> None:
    chunks = load_chunks()
    seen: dict[str, int] = defaultdict(int)
    with OUT.open("w", encoding="utf-8") as out:
        for number, (name, kind, supported, sentence, context) in enumerate(PAIRS):
            half = "dev" if seen[kind] % 2 == 0 else "heldout"
            seen[kind] += 1
            record = {"id": number, "split": half, "kind": kind, "supported": supported, "sentence": sentence,
                      "context": context, "chunk": chunks[name]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{len(PAIRS)} pairs -> {OUT}: {dict(seen)}")


if __name__ == "__main__":
    main()
