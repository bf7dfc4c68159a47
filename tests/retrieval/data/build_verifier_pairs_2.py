# ruff: noqa: E501  (a table of hand-written sentences; one pair per line reads better than wrapped strings)
"""Build verifier_pairs_2.jsonl: a second held-out set of hand-labelled (sentence, cited chunk, supported?) pairs.

Written blind: the sentences and labels below were written from the chunks alone, without running or reading
the verifier, so the set measures it on data it was not tuned on. No chunk here is in verifier_pairs.jsonl
(the build checks this): the chunks come from sample documents the first set does not use (samples/kb/support,
samples/kb/experts, the refund policy PDF included) and from six Python FAQ pages it does not use (Python
Software Foundation, PSF licence). They are cut exactly as build_verifier_pairs.py cuts them: `ingest.parse`
and `ingest.chunk.split` at 200 tokens, each chunk located by a phrase it contains.

    .venv/bin/python tests/retrieval/data/build_verifier_pairs_2.py [path to python-faq-html]

Labels are those of the first set: `supported` means a reader of the chunk's BODY alone (not its title, not its
headings) would accept the sentence as a claim the chunk makes. Junk that says nothing checkable (a heading
echoed, "The answer is yes", "The source is: ...", a repeat of an earlier sentence, a fragment cut off by the
token cap) is not supported whatever its words. A sentence with a lead-in ("According to the source, ...") or
with an abbreviation, a decimal or a version number is labelled by what it claims. `unsaid` sentences are
same-topic claims the chunk does not make: swapped roles, an added condition, a wider scope, a rule of the
neighbouring row. `context` is the answer text before the sentence, when the kind needs one. Every row is in
the `heldout2` split.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from build_verifier_pairs import load_chunks  # this folder: the first set's builder cuts the chunks the same way

OUT = Path(__file__).with_name("verifier_pairs_2.jsonl")
FIRST_SET = Path(__file__).with_name("verifier_pairs.jsonl")
SUPPORT = "samples/kb/support/"
EXPERTS = "samples/kb/experts/"

# name: (file, a phrase the chunk contains)
CHUNKS = {
    "credit_apply": (SUPPORT + "dashbite_credits.md", "before your payment method is charged"),
    "credit_valid": (SUPPORT + "dashbite_credits.md", "valid for 12 months from the date it was added"),
    "credit_cannot": (SUPPORT + "dashbite_credits.md", "cannot be paid out as cash"),
    "edit_window": (SUPPORT + "changing_an_order.md", "edit window of 2 minutes"),
    "add_dishes": (SUPPORT + "changing_an_order.md", "place a second order from the same restaurant"),
    "change_address": (SUPPORT + "changing_an_order.md", "within 500 metres of the original one"),
    "change_payment": (SUPPORT + "changing_an_order.md", "choose another method within 5 minutes"),
    "estimate": (SUPPORT + "delivery_times_and_tracking.md", "Most Dashbite orders arrive within 25 to 45 minutes"),
    "live_tracking": (SUPPORT + "delivery_times_and_tracking.md", "position updates every 10 seconds"),
    "masked_number": (SUPPORT + "delivery_times_and_tracking.md", "Calls go through a masked number"),
    "promo_rules": (SUPPORT + "promo_codes_and_referrals.md", "Only one promo code per order"),
    "welcome": (SUPPORT + "promo_codes_and_referrals.md", "New customers get €10 off"),
    "referral": (SUPPORT + "promo_codes_and_referrals.md", "Referral credit is valid for 30 days"),
    "pay_delivery": (SUPPORT + "courier_pay.md", "a base fee of €3.20"),
    "bonuses": (SUPPORT + "courier_pay.md", "Late-night bonus"),
    "courier_cancelled": (SUPPORT + "courier_pay.md", "cancelled after you have arrived at the restaurant"),
    "payout": (SUPPORT + "courier_pay.md", "paid every Thursday by SEPA bank transfer"),
    "refund_scope": (SUPPORT + "refund_policy.pdf", "Dashbite B.V. in the Netherlands"),
    "refund_window": (SUPPORT + "refund_policy.pdf", "We do not give refunds for personal taste"),
    "refund_amount": (SUPPORT + "refund_policy.pdf", "including paid options"),
    "refund_fees": (SUPPORT + "refund_policy.pdf", "Fees are only refunded when the whole order is refunded"),
    "refund_choice": (SUPPORT + "refund_policy.pdf", "it cannot be changed afterwards"),
    "refund_review": (SUPPORT + "refund_policy.pdf", "ask for a second review"),
    "chargeback": (SUPPORT + "refund_policy.pdf", "14-day right of withdrawal"),
    "privacy_collect": (SUPPORT + "privacy_and_your_data.txt", "Full card numbers are held by our payment provider"),
    "privacy_share": (SUPPORT + "privacy_and_your_data.txt", "We do not sell your personal data"),
    "privacy_retention": (SUPPORT + "privacy_and_your_data.txt", "Leave-at-door photos: 30 days"),
    "labels_who": (SUPPORT + "dietary_labels.md", "we do not inspect kitchens"),
    "labels_def": (SUPPORT + "dietary_labels.md", "contains no animal products"),
    "signup": (SUPPORT + "account_signup_and_login.md", "6-digit verification code"),
    "login_fail": (SUPPORT + "account_signup_and_login.md", "After 5 failed login attempts"),
    "contact_customers": (SUPPORT + "contact_us.md", "+31 20 555 0142"),
    "contact_postal": (SUPPORT + "contact_us.md", "Chamber of Commerce (KvK) number"),
    "access_prefs": (SUPPORT + "accessibility.md", "never shown to the restaurant"),
    "sev_levels": (EXPERTS + "incident_severity_levels.md", "When in doubt, choose the higher severity"),
    "sev_public": (EXPERTS + "incident_severity_levels.md", "Never promise compensation in public messages"),
    "commission_rates": (EXPERTS + "partner_commission_exceptions.md", "The public fee schedule is 28%"),
    "commission_floor": (EXPERTS + "partner_commission_exceptions.md", "may never go below 12%"),
    "stuck_amber": (EXPERTS + "runbook_order_stuck_in_dispatch.md", "A dispatcher may approve Boosts up to €3.00"),
    "stuck_red": (EXPERTS + "runbook_order_stuck_in_dispatch.md", "a €5 goodwill credit (reason code RC-11)"),
    "tablet_detect": (EXPERTS + "runbook_restaurant_tablet_offline.md", "sends a heartbeat every 30 seconds"),
    "mass_refund_when": (EXPERTS + "runbook_mass_refund_procedure.md", "mandatory when 50 or more orders"),
    "mass_refund_exec": (EXPERTS + "runbook_mass_refund_procedure.md", "four-eyes"),
    "allergen_agent": (EXPERTS + "allergen_incident_internal_procedure.md", "reason code RC-20"),
    "allergen_consequences": (EXPERTS + "allergen_incident_internal_procedure.md", "mandatory allergen retraining"),
    "courier_allegation": (EXPERTS + "runbook_courier_incident_escalation.md", "lasts at most 72 hours"),
    "courier_welfare": (EXPERTS + "runbook_courier_incident_escalation.md", "up to 3 free sessions"),
    "lib_executable": ("faq:library.html", "chmod +x scriptfile"),
    "lib_threads": ("faq:library.html", "As soon as the main thread exits"),
    "lib_copy": ("faq:library.html", "shutil.copy2()"),
    "lib_random": ("faq:library.html", "random floating point number in the range"),
    "design_float": ("faq:design.html", "typically 53 bits"),
    "design_walrus": ("faq:design.html", "Starting in Python 3.8, you can!"),
    "design_lists": ("faq:design.html", "not Lisp-style linked lists"),
    "design_sort": ("faq:design.html", "list.sort() sorts the list in place"),
    "installed_delete": ("faq:installed.html", "removing it is not recommended"),
    "win_pyd": ("faq:windows.html", "If you have a DLL named foo.pyd"),
    "win_tabs": ("faq:windows.html", "recommends 4 spaces"),
    "gui_toolkits": ("faq:gui.html", "called tkinter"),
    "ext_cpp": ("faq:extending.html", 'Place extern "C"'),
}

S, U = True, False
# (chunk, kind, supported, sentence as the model wrote it, answer text before it)
PAIRS: list[tuple[str, str, bool, str, str]] = [
    # Dashbite Credits: how credit is applied
    ("credit_apply", "extractive", S, "Credit is applied automatically at checkout, before your payment method is charged [1].", ""),
    ("credit_apply", "paraphrase", S, "When your credit pays for the entire order, your payment method is not charged [1].", ""),
    ("credit_apply", "negation", U, "Credit can be used to buy gift cards [1].", ""),
    ("credit_apply", "unsaid", U, "Credit is applied automatically at checkout, after your gift card balance [1].", ""),
    ("credit_apply", "unsaid", U, "You can choose to use only part of your credit on an order [1].", ""),
    ("credit_apply", "heading_echo", U, "How credit is applied [1].", ""),
    # Dashbite Credits: validity
    ("credit_valid", "extractive", S, "Dashbite Credit is valid for 12 months from the date it was added [1].", ""),
    ("credit_valid", "extractive", S, "Credit that expires soonest is used first [1].", ""),
    ("credit_valid", "paraphrase", S, "Referral credits are an example of promotional credit that stays valid for less time than usual [1].", ""),
    ("credit_valid", "abbreviation", S, "Dashbite Credit lasts 12 months, i.e. one year from the date it was added [1].", ""),
    ("credit_valid", "wrong_number", U, "Dashbite Credit is valid for 24 months from the date it was added [1].", ""),
    ("credit_valid", "unsaid", U, "The validity of promotional credits is shown under Account > Promotions [1].", ""),
    # Dashbite Credits: what credit cannot do
    ("credit_cannot", "extractive", S, "Credit cannot be paid out as cash or transferred to a bank account [1].", ""),
    ("credit_cannot", "paraphrase", S, "You cannot move your credit to someone else's Dashbite account [1].", ""),
    ("credit_cannot", "negation", U, "Credit can be moved to another Dashbite account [1].", ""),
    ("credit_cannot", "unsaid", U, "Credit can be converted into a gift card balance [1].", ""),
    ("credit_cannot", "lead_in", U, "According to the source, Dashbite Credit can be paid out as cash on request [1].", ""),
    ("credit_cannot", "heading_echo", U, "What credit cannot do [1].", ""),
    # changing an order: the edit window
    ("edit_window", "extractive", S, "Right after you place an order you have an edit window of 2 minutes, or until the restaurant accepts the order, whichever comes first [1].", ""),
    ("edit_window", "extractive", S, "The Edit order button disappears once the window closes [1].", ""),
    ("edit_window", "paraphrase", S, "During the edit window you can switch an order from ASAP to a scheduled time [1].", ""),
    ("edit_window", "paraphrase", S, "If an edit changes the price, the difference is settled automatically on the payment method you used [1].", ""),
    ("edit_window", "abbreviation", S, "During the edit window you can change dish options, e.g. choose a different side [1].", ""),
    ("edit_window", "wrong_number", U, "You have an edit window of 5 minutes after placing an order [1].", ""),
    ("edit_window", "unsaid", U, "During the edit window you can add new dishes to the order [1].", ""),
    ("edit_window", "truncated", U, "Right after you place an order you have an edit window of 2 minutes, or until the", ""),
    ("edit_window", "source_echo", U, "The source is: Changing an order — The edit window [1].", ""),
    # changing an order: after the restaurant accepts
    ("add_dishes", "extractive", S, "If you forgot something, place a second order from the same restaurant [1].", ""),
    ("add_dishes", "paraphrase", S, "Two separate orders each carry their own delivery fee, even if one courier brings both [1].", ""),
    ("add_dishes", "negation", U, "After the restaurant has accepted, the basket can still be changed [1].", ""),
    ("add_dishes", "unsaid", U, "If you place a second order from the same restaurant, both orders are always handed to the same courier [1].", ""),
    ("add_dishes", "heading_echo", U, "Adding dishes after the restaurant accepts [1].", ""),
    # changing an order: the address
    ("change_address", "extractive", S, "After pickup the address cannot be changed, because the courier is already on the route [1].", ""),
    ("change_address", "paraphrase", S, "Before pickup you can move the delivery to a new address no more than 500 metres from the original [1].", ""),
    ("change_address", "abbreviation", S, "After pickup you can still message the courier, e.g. to say you will meet them at a side entrance [1].", ""),
    ("change_address", "wrong_number", U, "You can change the address as long as the new address is within 2 km of the original one [1].", ""),
    ("change_address", "negation", U, "After pickup you can still change the address in the app [1].", ""),
    ("change_address", "unsaid", U, "If the new address is more than 500 metres away, the courier can still deliver there for an extra fee [1].", ""),
    # changing an order: the payment method
    ("change_payment", "extractive", S, "The payment method cannot be changed after the order is placed, because the amount has already been authorised [1].", ""),
    ("change_payment", "paraphrase", S, "If you do not pick a new payment method within 5 minutes of a failed payment, the order is cancelled and you are not charged [1].", ""),
    ("change_payment", "wrong_number", U, "If a payment fails, the app asks you to choose another method within 15 minutes [1].", ""),
    ("change_payment", "negation", U, "You can change the payment method after the order is placed [1].", ""),
    ("change_payment", "unsaid", U, "If a payment fails after you place the order, the amount is taken from your Dashbite Credit instead [1].", ""),
    ("change_payment", "heading_echo", U, "Changing the payment method [1].", ""),
    # delivery times: the estimate
    ("estimate", "extractive", S, "Most Dashbite orders arrive within 25 to 45 minutes [1].", ""),
    ("estimate", "paraphrase", S, "Once you have ordered, the estimate narrows to a window of 10 minutes [1].", ""),
    ("estimate", "paraphrase", S, "The delivery estimate takes into account preparation time, how many couriers are nearby and the route distance [1].", ""),
    ("estimate", "wrong_number", U, "After you place the order, the estimate becomes a 5-minute window [1].", ""),
    ("estimate", "unsaid", U, "The estimate combines the restaurant's preparation time, the number of couriers nearby and the current weather [1].", ""),
    ("estimate", "lead_in", S, "Based on the sources, the estimate is updated as your order progresses [1].", ""),
    ("estimate", "heading_echo", U, "How we estimate delivery time [1].", ""),
    # delivery times: live tracking
    ("live_tracking", "extractive", S, "The courier's position updates every 10 seconds [1].", ""),
    ("live_tracking", "paraphrase", S, "Once the order is delivered, the courier's location is no longer shown on the map [1].", ""),
    ("live_tracking", "wrong_number", U, "The courier's position updates every 30 seconds [1].", ""),
    ("live_tracking", "unsaid", U, "You can follow the courier on a live map as soon as a courier is assigned to your order [1].", ""),
    ("live_tracking", "heading_echo", U, "Live tracking [1].", ""),
    # delivery times: contacting the courier
    ("masked_number", "extractive", S, "Calls go through a masked number, so neither of you sees the other's real phone number [1].", ""),
    ("masked_number", "paraphrase", S, "You can still reach the courier through the masked number for half an hour after delivery [1].", ""),
    ("masked_number", "wrong_number", U, "The masked number works from pickup until 60 minutes after delivery [1].", ""),
    ("masked_number", "negation", U, "The courier can see your real phone number when you call [1].", ""),
    ("masked_number", "unsaid", U, "Calls through the masked number are recorded so support can check them [1].", ""),
    ("masked_number", "repeat", U, "Calls go through a masked number, so neither of you sees the other's real phone number [1].",
     "Tap Message or Call on the tracking screen [1]. Calls go through a masked number, so neither of you sees the other's real phone number [1]."),
    # promo codes: rules
    ("promo_rules", "extractive", S, "Discounts apply to the food subtotal only, never to the delivery fee, service fee, small-order fee or tip [1].", ""),
    ("promo_rules", "extractive", S, "Codes cannot be exchanged for cash or credit [1].", ""),
    ("promo_rules", "paraphrase", S, "You can use just one promo code on each order [1].", ""),
    ("promo_rules", "paraphrase", S, "A single-use code comes back to your account when you cancel the order, provided it has not expired [1].", ""),
    ("promo_rules", "abbreviation", S, "Promo codes cannot be combined with a restaurant's own offers, e.g. \"2 for 1\", unless the offer says so [1].", ""),
    ("promo_rules", "negation", U, "Promo codes can be combined with a restaurant's own offers [1].", ""),
    ("promo_rules", "unsaid", U, "If you cancel an order, an expired single-use code is returned to you as Dashbite Credit [1].", ""),
    ("promo_rules", "heading_echo", U, "Rules for all promo codes [1].", ""),
    # promo codes: welcome offer
    ("welcome", "extractive", S, "New customers get €10 off their first order of €25 or more with the code WELCOME10 [1].", ""),
    ("welcome", "paraphrase", S, "WELCOME10 expires 14 days after the account is created [1].", ""),
    ("welcome", "wrong_number", U, "New customers get €10 off their first order of €15 or more with the code WELCOME10 [1].", ""),
    ("welcome", "wrong_number", U, "The welcome code is valid for 30 days after you create your account [1].", ""),
    ("welcome", "unsaid", U, "WELCOME10 can be used once per person, so several people at the same household address can each use it [1].", ""),
    ("welcome", "answer_is", U, "The answer is yes [1].", ""),
    # promo codes: refer a friend
    ("referral", "extractive", S, "Referral credit is valid for 30 days, shorter than other credit [1].", ""),
    ("referral", "extractive", S, "A referral cannot be added afterwards [1].", ""),
    ("referral", "paraphrase", S, "You receive €7 Dashbite Credit once your friend's first order has been delivered [1].", ""),
    ("referral", "paraphrase", S, "Each calendar year you can earn referral credit for at most 20 friends [1].", ""),
    ("referral", "wrong_number", U, "You can earn referral credit for up to 50 friends per calendar year [1].", ""),
    ("referral", "unsaid", U, "Your friend gets €7 Dashbite Credit when your next order has been delivered [1].", ""),
    ("referral", "unsaid", U, "You get €7 Dashbite Credit as soon as your friend signs up with your link [1].", ""),
    ("referral", "negation", U, "A referral can be added after your friend has placed their first order [1].", ""),
    ("referral", "truncated", U, "Your friend must be a new customer and must use your link or code before",
     "Share your personal referral link from Account > Refer a friend [1]."),
    ("referral", "title_only", U, "Dashbite has a help page on promo codes and referrals [1].", ""),
    # courier pay: per delivery
    ("pay_delivery", "extractive", S, "For each completed delivery you earn a base fee of €3.20 [1].", ""),
    ("pay_delivery", "extractive", S, "The courier app shows the guaranteed minimum for each offer before you accept it [1].", ""),
    ("pay_delivery", "paraphrase", S, "Waiting at the restaurant only earns money after the first five minutes [1].", ""),
    ("pay_delivery", "abbreviation", S, "A 3.0 km delivery with 9 minutes of waiting pays €6.55 before tips and bonuses [1].", ""),
    ("pay_delivery", "abbreviation", U, "Couriers earn €0.85 per km of route distance, i.e. measured from the courier's position to the customer [1].", ""),
    ("pay_delivery", "wrong_number", U, "Distance is paid at €1.85 per kilometre of route distance [1].", ""),
    ("pay_delivery", "wrong_number", U, "Waiting time is paid when you wait at the restaurant for more than 10 minutes after arriving [1].", ""),
    ("pay_delivery", "unsaid", U, "The base fee is higher for deliveries longer than 5 km [1].", ""),
    ("pay_delivery", "heading_echo", U, "Pay per delivery [1].", ""),
    # courier pay: bonuses
    ("bonuses", "extractive", S, "Late-night bonus: +€1.50 per delivery completed between 23:00 and 02:00 [1].", ""),
    ("bonuses", "paraphrase", S, "When you carry two orders at once, you are paid the full base fee for each of them [1].", ""),
    ("bonuses", "paraphrase", S, "The weather bonus adds €1.00 to each delivery while it is active in your city [1].", ""),
    ("bonuses", "wrong_number", U, "The late-night bonus is paid per delivery completed between 22:00 and 02:00 [1].", ""),
    ("bonuses", "unsaid", U, "The weather bonus and the late-night bonus cannot be combined on the same delivery [1].", ""),
    # courier pay: cancelled orders
    ("courier_cancelled", "extractive", S, "If an order is cancelled after you have arrived at the restaurant, you receive the base fee plus any waiting time [1].", ""),
    ("courier_cancelled", "paraphrase", S, "A courier whose order is cancelled after pickup is paid in full, as if the delivery had been completed [1].", ""),
    ("courier_cancelled", "negation", U, "If an order is cancelled after you have arrived at the restaurant, you are not paid anything [1].", ""),
    ("courier_cancelled", "unsaid", U, "If an order is cancelled after you picked up the food, you receive the base fee plus any waiting time [1].", ""),
    ("courier_cancelled", "unsaid", U, "If an order is cancelled after you picked up the food, you may keep the food [1].", ""),
    ("courier_cancelled", "heading_echo", U, "Cancelled orders [1].", ""),
    # courier pay: weekly payout
    ("payout", "extractive", S, "Earnings for each week are paid every Thursday by SEPA bank transfer to the account in your profile [1].", ""),
    ("payout", "paraphrase", S, "Your pay statement appears in the app on Wednesday evening, the day before the money is paid [1].", ""),
    ("payout", "unsaid", U, "Earnings are paid by SEPA bank transfer or, if you prefer, to a PayPal account [1].", ""),
    ("payout", "truncated", U, "Earnings for each week (Monday 00:00 to Sunday 23:59) are paid every", ""),
    ("payout", "title_only", U, "Dashbite has a page on courier pay and earnings [1].", ""),
    ("payout", "heading_echo", U, "Weekly payout [1].", ""),
    # refund policy: scope and when you can ask
    ("refund_scope", "extractive", S, "You can ask for a refund when the entire order never arrived [1].", ""),
    ("refund_scope", "paraphrase", S, "A refund can be requested if an item was damaged or spilled on the way [1].", ""),
    ("refund_scope", "abbreviation", S, "The policy applies to all orders placed with Dashbite B.V. in the Netherlands [1].", ""),
    ("refund_scope", "abbreviation", S, "Version 3.2 of the refund policy took effect on 1 February 2025 [1].", ""),
    ("refund_scope", "wrong_number", U, "Version 3.2 of the refund policy took effect on 1 February 2024 [1].", ""),
    ("refund_scope", "unsaid", U, "The refund policy also sets the compensation for late deliveries [1].", ""),
    # refund policy: exclusions and reporting window
    ("refund_window", "extractive", S, "Report a problem within 48 hours of delivery [1].", ""),
    ("refund_window", "paraphrase", S, "A dish labelled with three chillies is not refunded just because you found it too spicy [1].", ""),
    ("refund_window", "paraphrase", S, "If your order never arrived, the 48 hours are counted from the end of the last delivery window the app showed [1].", ""),
    ("refund_window", "wrong_number", U, "Report a problem within 72 hours of delivery [1].", ""),
    ("refund_window", "negation", U, "Reports made after 48 hours are still eligible for a refund [1].", ""),
    ("refund_window", "unsaid", U, "Food safety incidents involving allergens can be reported up to 14 days after delivery [1].", ""),
    ("refund_window", "heading_echo", U, "Reporting window [1].", ""),
    # refund policy: how much
    ("refund_amount", "extractive", S, "Missing, wrong or damaged items: the price of each affected item, including paid options [1].", ""),
    ("refund_amount", "paraphrase", S, "If unsafe food affected the whole meal, you get back the full food subtotal [1].", ""),
    ("refund_amount", "unsaid", U, "For a missing item you also get the delivery fee back [1].", ""),
    ("refund_amount", "heading_echo", U, "How much is refunded [1].", ""),
    ("refund_amount", "truncated", U, "Entire order not received: the full amount paid, including delivery fee, service fee, small-order",
     "Missing items are refunded at the price of each affected item [1]."),
    # refund policy: fees and discounts
    ("refund_fees", "extractive", S, "Fees are only refunded when the whole order is refunded [1].", ""),
    ("refund_fees", "extractive", S, "A refund never exceeds the amount you paid for the order [1].", ""),
    ("refund_fees", "paraphrase", S, "When the restaurant or Dashbite cancels your order, everything you paid is refunded [1].", ""),
    ("refund_fees", "paraphrase", S, "If you used a promo code, the discount is taken off each item in proportion [1].", ""),
    ("refund_fees", "negation", U, "Fees are refunded even when only part of the order is refunded [1].", ""),
    ("refund_fees", "unsaid", U, "A discount from a promo code is deducted from the most expensive item first [1].", ""),
    # refund policy: credit or original payment method
    ("refund_choice", "extractive", S, "Orders paid with gift card balance are always refunded to the gift card balance [1].", ""),
    ("refund_choice", "extractive", S, "The refund appears on your bank or card statement as \"DASHBITE REFUND\" together with your order number [1].", ""),
    ("refund_choice", "paraphrase", S, "Once the refund is approved, you cannot switch between Dashbite Credit and your original payment method [1].", ""),
    ("refund_choice", "negation", U, "You can change your choice between credit and the original payment method after the refund is approved [1].", ""),
    ("refund_choice", "unsaid", U, "For an order that never arrived, you choose between Dashbite Credit and a refund to your original payment method [1].", ""),
    # refund policy: second review and fair use
    ("refund_review", "extractive", S, "A different, senior agent reviews the case and replies within 5 business days [1].", ""),
    ("refund_review", "paraphrase", S, "You have 7 days to ask for a second review if a refund request was rejected [1].", ""),
    ("refund_review", "paraphrase", S, "Accounts with an unusually high number of refunds may afterwards be refunded only in Dashbite Credit [1].", ""),
    ("refund_review", "wrong_number", U, "A senior agent replies to a request for a second review within 10 business days [1].", ""),
    ("refund_review", "negation", U, "We do not tell you if we restrict your account [1].", ""),
    ("refund_review", "unsaid", U, "The agent who made the first decision reviews the case again [1].", ""),
    ("refund_review", "unsaid", U, "Accounts are closed after three refund requests in a month [1].", ""),
    ("refund_review", "heading_echo", U, "If you disagree with a decision [1].", ""),
    # refund policy: chargebacks and statutory rights
    ("chargeback", "extractive", S, "Because food is perishable, the 14-day right of withdrawal for online purchases does not apply to Dashbite orders [1].", ""),
    ("chargeback", "paraphrase", S, "While a chargeback is open, an open refund request is put on hold so you are not paid twice [1].", ""),
    ("chargeback", "abbreviation", S, "The policy does not limit your other rights under Dutch and EU consumer law, e.g. your right to a product that matches the agreement [1].", ""),
    ("chargeback", "wrong_number", U, "The 30-day right of withdrawal for online purchases does not apply to Dashbite orders [1].", ""),
    ("chargeback", "negation", U, "The 14-day right of withdrawal for online purchases applies to Dashbite orders [1].", ""),
    ("chargeback", "unsaid", U, "Opening a chargeback closes your Dashbite account [1].", ""),
    ("chargeback", "source_echo", U, "The source is: Dashbite Refund Policy — Chargebacks [1].", ""),
    # privacy: what we collect
    ("privacy_collect", "extractive", S, "Full card numbers are held by our payment provider, never by Dashbite [1].", ""),
    ("privacy_collect", "paraphrase", S, "For payment details, Dashbite stores the payment method type, the last four digits and the expiry date [1].", ""),
    ("privacy_collect", "abbreviation", S, "Dashbite B.V. in Amsterdam is the controller of your personal data under the GDPR [1].", ""),
    ("privacy_collect", "negation", U, "Dashbite stores your full card number [1].", ""),
    ("privacy_collect", "unsaid", U, "Dashbite shares your order history with advertising partners [1].", ""),
    ("privacy_collect", "heading_echo", U, "What we collect [1].", ""),
    # privacy: who receives what
    ("privacy_share", "extractive", S, "We do not sell your personal data [1].", ""),
    ("privacy_share", "paraphrase", S, "Dashbite does not sell the personal data of its customers [1].", ""),
    ("privacy_share", "negation", U, "Dashbite sells your personal data [1].", ""),
    ("privacy_share", "unsaid", U, "Restaurants receive your delivery address and accessibility needs [1].", ""),
    ("privacy_share", "unsaid", U, "Couriers receive your full name and phone number [1].", ""),
    ("privacy_share", "no_claim", U, "Good question [1].", ""),
    # privacy: retention
    ("privacy_retention", "extractive", S, "Support chats and report photos: 2 years after the conversation is closed [1].", ""),
    ("privacy_retention", "paraphrase", S, "Dashbite keeps leave-at-door photos for 30 days [1].", ""),
    ("privacy_retention", "paraphrase", S, "Courier location during a delivery is kept for 90 days so that disputes about deliveries can be handled [1].", ""),
    ("privacy_retention", "wrong_number", U, "Order and payment records are kept for 10 years after the order [1].", ""),
    ("privacy_retention", "wrong_number", U, "Support chats and report photos are kept for 5 years after the conversation is closed [1].", ""),
    ("privacy_retention", "unsaid", U, "Support chats are kept for 2 years after the order was delivered [1].", ""),
    ("privacy_retention", "repeat", U, "Order and payment records are kept for 7 years [1].",
     "Order and payment records are kept for 7 years [1]. Leave-at-door photos are kept for 30 days [1]."),
    # dietary labels: who sets them
    ("labels_who", "extractive", S, "Restaurants set dietary labels themselves when they build their menu in the Partner Hub [1].", ""),
    ("labels_who", "paraphrase", S, "Dashbite does not inspect restaurant kitchens or ingredients [1].", ""),
    ("labels_who", "abbreviation", S, "Dashbite checks new menus for obvious mistakes, e.g. a beef burger labelled Vegetarian [1].", ""),
    ("labels_who", "unsaid", U, "Dashbite sets the dietary labels when restaurants build their menu in the Partner Hub [1].", ""),
    ("labels_who", "unsaid", U, "Dashbite checks every menu change for obvious mistakes [1].", ""),
    ("labels_who", "heading_echo", U, "Who sets the labels [1].", ""),
    # dietary labels: definitions
    ("labels_def", "extractive", S, "Vegan: contains no animal products, including dairy, eggs and honey [1].", ""),
    ("labels_def", "extractive", S, "A restaurant shows a label on its card in the list only when at least 30% of its main dishes carry that label [1].", ""),
    ("labels_def", "paraphrase", S, "Vegetarian dishes may contain eggs or dairy but no meat or fish [1].", ""),
    ("labels_def", "paraphrase", S, "Restaurants that use the Halal label have to upload their certificate in the Partner Hub [1].", ""),
    ("labels_def", "abbreviation", S, "Spicy dishes show one, two or three chilli icons, i.e. mild, medium or hot [1].", ""),
    ("labels_def", "wrong_number", U, "A restaurant shows a label on its card only when at least 50% of its main dishes carry that label [1].", ""),
    ("labels_def", "negation", U, "Vegan dishes may contain honey [1].", ""),
    ("labels_def", "unsaid", U, "Dashbite checks each halal certificate with the certifying body [1].", ""),
    # accounts: ways to sign up
    ("signup", "extractive", S, "Every account needs a verified mobile phone number so that couriers can reach you [1].", ""),
    ("signup", "paraphrase", S, "The SMS verification code has six digits and expires after 10 minutes [1].", ""),
    ("signup", "paraphrase", S, "You cannot link the same phone number to two Dashbite accounts [1].", ""),
    ("signup", "wrong_number", U, "We send a 6-digit verification code by SMS, which is valid for 30 minutes [1].", ""),
    ("signup", "unsaid", U, "Accounts created with Sign in with Apple do not need a verified phone number [1].", ""),
    ("signup", "heading_echo", U, "Ways to sign up [1].", ""),
    # accounts: failed logins
    ("login_fail", "extractive", S, "After 5 failed login attempts in a row, your account is locked for 15 minutes [1].", ""),
    ("login_fail", "paraphrase", S, "Resetting your password unlocks a locked account straight away [1].", ""),
    ("login_fail", "wrong_number", U, "After 3 failed login attempts in a row, your account is locked for 15 minutes [1].", ""),
    ("login_fail", "wrong_number", U, "After 5 failed login attempts, your account is locked for 1 hour [1].", ""),
    ("login_fail", "unsaid", U, "After 5 failed login attempts, you must contact support to unlock your account [1].", ""),
    ("login_fail", "answer_is", U, "The answer is no [1].", ""),
    ("login_fail", "heading_echo", U, "Failed login attempts [1].", ""),
    # contact: customers
    ("contact_customers", "extractive", S, "In-app chat: available 24 hours a day, 7 days a week [1].", ""),
    ("contact_customers", "paraphrase", S, "The phone line is open every day from 08:00 to 23:00 Amsterdam time [1].", ""),
    ("contact_customers", "paraphrase", S, "Sending the same question by both chat and email will not get you an answer sooner [1].", ""),
    ("contact_customers", "wrong_number", U, "Questions sent by email are answered within 48 hours [1].", ""),
    ("contact_customers", "unsaid", U, "In-app chat is available every day from 08:00 to 23:00 [1].", ""),
    ("contact_customers", "no_claim", U, "Happy to help [1]!", ""),
    # contact: postal address
    ("contact_postal", "abbreviation", S, "Dashbite B.V. is at Keizersgracht 512, 1017 EK Amsterdam [1].", ""),
    ("contact_postal", "abbreviation", S, "Dashbite's Chamber of Commerce (KvK) number is 81234567 [1].", ""),
    ("contact_postal", "abbreviation", U, "Dashbite B.V. is at Keizersgracht 215, 1017 EK Amsterdam [1].", ""),
    ("contact_postal", "unsaid", U, "Dashbite B.V. receives visitors at its office on Keizersgracht 512 [1].", ""),
    ("contact_postal", "heading_echo", U, "Postal address [1].", ""),
    # accessibility: delivery preferences
    ("access_prefs", "extractive", S, "Unlike ordinary delivery instructions, accessibility needs are saved for all future orders and are never shown to the restaurant [1].", ""),
    ("access_prefs", "paraphrase", S, "Your saved accessibility needs are shown to every courier [1].", ""),
    ("access_prefs", "negation", U, "Accessibility needs are shown to the restaurant [1].", ""),
    ("access_prefs", "unsaid", U, "Couriers who do not follow your accessibility preferences lose their delivery fee [1].", ""),
    ("access_prefs", "unsaid", U, "Ordinary delivery instructions are saved for all future orders, unlike accessibility needs [1].", ""),
    ("access_prefs", "lead_in", S, "According to the source [1], you can ask couriers to allow extra time at the door.", ""),
    ("access_prefs", "heading_echo", U, "Delivery preferences [1].", ""),
    # experts: severity levels
    ("sev_levels", "extractive", S, "When in doubt, choose the higher severity; downgrading later is cheap [1].", ""),
    ("sev_levels", "extractive", S, "SEV-1 (critical): customers in one or more cities cannot place, pay for or receive orders, or there is a confirmed data breach [1].", ""),
    ("sev_levels", "paraphrase", S, "Live tracking that stops updating is an example of a major, SEV-2 incident [1].", ""),
    ("sev_levels", "paraphrase", S, "A slow back-office tool that is not critical counts as SEV-3 [1].", ""),
    ("sev_levels", "abbreviation", S, "SEV-1 examples are checkout down, card payments failing for more than 50% of attempts, etc. [1].", ""),
    ("sev_levels", "wrong_number", U, "Card payments failing for more than 30% of attempts is an example of a SEV-1 [1].", ""),
    ("sev_levels", "wrong_number", U, "More than 10 red orders in one city for 15 minutes is a SEV-2 example [1].", ""),
    ("sev_levels", "negation", U, "When in doubt, choose the lower severity [1].", ""),
    ("sev_levels", "unsaid", U, "A single restaurant's menu that does not update is a SEV-2 incident [1].", ""),
    # experts: customer-facing messages
    ("sev_public", "extractive", S, "Never promise compensation in public messages [1].", ""),
    ("sev_public", "extractive", S, "Only Support Operations and the Incident Commander may publish status page updates or in-app banners [1].", ""),
    ("sev_public", "paraphrase", S, "Public messages should speak of \"a technical issue with one of our partners\" instead of naming the payment provider [1].", ""),
    ("sev_public", "negation", U, "You may mention the payment provider by name in public messages [1].", ""),
    ("sev_public", "unsaid", U, "Compensation is decided after the incident by Support Operations [1].", ""),
    ("sev_public", "unsaid", U, "Any engineer working on the incident may publish in-app banners [1].", ""),
    ("sev_public", "title_only", U, "Dashbite defines incident severity levels [1].", ""),
    # experts: commission rates
    ("commission_rates", "extractive", S, "The public fee schedule is 28% (Dashbite delivery), 15% (own delivery) and 8% (pickup) [1].", ""),
    ("commission_rates", "paraphrase", S, "Every commission exception has to be logged in the CRM together with a link to its approval [1].", ""),
    ("commission_rates", "wrong_number", U, "The public fee schedule is 30% for Dashbite delivery [1].", ""),
    ("commission_rates", "wrong_number", U, "The public rate for pickup orders is 15% [1].", ""),
    ("commission_rates", "unsaid", U, "Sales may offer a lower rate to any partner who asks, as long as it is recorded in the CRM [1].", ""),
    # experts: allowed exceptions
    ("commission_floor", "extractive", S, "Rates for own delivery may never go below 12% and pickup never below 6%, whatever the situation [1].", ""),
    ("commission_floor", "abbreviation", S, "A new independent restaurant can get 22% for an introductory period of max. 3 months, approved by the City Sales Lead [1].", ""),
    ("commission_floor", "paraphrase", S, "A chain with 50 or more locations on Dashbite can go down to 20%, but only with approval from both the Head of Partnerships and the CFO [1].", ""),
    ("commission_floor", "wrong_number", U, "A retention offer of 25% can last for max. 12 months [1].", ""),
    ("commission_floor", "wrong_number", U, "Pickup rates may go as low as 4% for chains with 50 or more locations [1].", ""),
    ("commission_floor", "unsaid", U, "An exclusive partner can get 25% with approval from the Head of Partnerships [1].", ""),
    ("commission_floor", "repeat", U, "Rates for own delivery may never go below 12% [1].",
     "Rates for own delivery may never go below 12% [1]."),
    ("commission_floor", "heading_echo", U, "Allowed exceptions [1].", ""),
    # experts: stuck order, amber
    ("stuck_amber", "extractive", S, "Boosts are paid by Dashbite, not the restaurant or customer [1].", ""),
    ("stuck_amber", "extractive", S, "A dispatcher may approve Boosts up to €3.00 per order [1].", ""),
    ("stuck_amber", "paraphrase", S, "A courier who is assigned manually can still turn the order down [1].", ""),
    ("stuck_amber", "abbreviation", S, "If 3 or more couriers declined, the offer can be raised with a Boost of +€1.50 or +€3.00 [1].", ""),
    ("stuck_amber", "wrong_number", U, "If 5 or more couriers declined, raise the offer with Boost [1].", ""),
    ("stuck_amber", "negation", U, "Boosts are paid by the restaurant, not by Dashbite [1].", ""),
    ("stuck_amber", "unsaid", U, "Boosts above €3.00 need approval from the Head of Partnerships [1].", ""),
    ("stuck_amber", "heading_echo", U, "Amber: manual handling [1].", ""),
    # experts: stuck order, red
    ("stuck_red", "extractive", S, "This €5 credit is pre-approved for dispatchers and does not count against an agent's goodwill limit [1].", ""),
    ("stuck_red", "paraphrase", S, "After 20 minutes without a courier, the dispatcher lets the customer choose between waiting and cancelling with a full refund and €5 credit [1].", ""),
    ("stuck_red", "paraphrase", S, "Customers who decide to keep waiting still get the automatic late-delivery credit if the order ends up late [1].", ""),
    ("stuck_red", "wrong_number", U, "At 20 minutes unassigned, the dispatcher offers a full refund plus a €10 goodwill credit [1].", ""),
    ("stuck_red", "wrong_number", U, "At 10 minutes the customer automatically gets a push notification that the order is taking longer than expected [1].", ""),
    ("stuck_red", "negation", U, "The €5 credit counts against the agent's goodwill limit [1].", ""),
    ("stuck_red", "unsaid", U, "Customers who choose to keep waiting also receive the €5 goodwill credit [1].", ""),
    ("stuck_red", "repeat", U, "Customers who cancel get a full refund plus a €5 goodwill credit [1].",
     "At 20 minutes unassigned, the dispatcher contacts the customer via chat [1]. Customers who cancel get a full refund plus a €5 goodwill credit [1]."),
    ("stuck_red", "source_echo", U, "Source: Runbook: Order stuck in dispatch — Red: involve the customer [1].", ""),
    # experts: tablet offline, detection
    ("tablet_detect", "extractive", S, "Every Dashbite Kitchen device sends a heartbeat every 30 seconds [1].", ""),
    ("tablet_detect", "paraphrase", S, "A restaurant whose tablet has sent no heartbeat for 5 minutes is paused in the app automatically [1].", ""),
    ("tablet_detect", "wrong_number", U, "After 10 minutes without heartbeat the restaurant is paused automatically [1].", ""),
    ("tablet_detect", "wrong_number", U, "If no heartbeat arrives for 1 minute, the Partner Ops queue shows the tablet_offline alert [1].", ""),
    ("tablet_detect", "unsaid", U, "The tablet_offline alert is also sent to the restaurant by SMS [1].", ""),
    ("tablet_detect", "unsaid", U, "After 3 minutes without heartbeat the restaurant is paused, and after 5 minutes Partner Ops sees the alert [1].", ""),
    ("tablet_detect", "truncated", U, "If no heartbeat arrives for 3 minutes while the restaurant is open, the Partner Ops queue",
     "Every Dashbite Kitchen device sends a heartbeat every 30 seconds [1]."),
    ("tablet_detect", "title_only", U, "There is a runbook for restaurant tablets that go offline [1].", ""),
    # experts: mass refund, when
    ("mass_refund_when", "extractive", S, "The procedure is mandatory when 50 or more orders need the same refund [1].", ""),
    ("mass_refund_when", "paraphrase", S, "When fewer than 50 orders are affected, agents refund each order separately within their usual limits [1].", ""),
    ("mass_refund_when", "abbreviation", S, "A mass refund is for one cause that affected many orders at once, e.g. a payment double-charge [1].", ""),
    ("mass_refund_when", "wrong_number", U, "The procedure is mandatory when 100 or more orders need the same refund [1].", ""),
    ("mass_refund_when", "unsaid", U, "Below 50 orders, a Team Lead must approve each refund [1].", ""),
    ("mass_refund_when", "lead_in", S, "Based on the sources, below 50 orders agents refund order by order [1].", ""),
    ("mass_refund_when", "heading_echo", U, "When to use this procedure [1].", ""),
    # experts: mass refund, execute
    ("mass_refund_exec", "extractive", S, "Do not run two batches for the same incident in parallel [1].", ""),
    ("mass_refund_exec", "paraphrase", S, "The person who presses Execute must be someone other than the person who uploaded the batch [1].", ""),
    ("mass_refund_exec", "abbreviation", S, "Execution follows the four-eyes principle, i.e. it needs a second person [1].", ""),
    ("mass_refund_exec", "wrong_number", U, "The tool processes about 10,000 refunds per minute [1].", ""),
    ("mass_refund_exec", "negation", U, "One person may both upload and execute a batch [1].", ""),
    ("mass_refund_exec", "unsaid", U, "The Bulk Refund Approver uploads the batch and a second person presses Execute [1].", ""),
    # experts: allergen incident, frontline agent
    ("allergen_agent", "extractive", S, "Refund the whole order immediately with reason code RC-20 [1].", ""),
    ("allergen_agent", "extractive", S, "If the customer is still unwell, tell them to call 112 first [1].", ""),
    ("allergen_agent", "paraphrase", S, "Agents at any tier may give the RC-20 refund, whatever the amount [1].", ""),
    ("allergen_agent", "paraphrase", S, "Frontline agents should not offer goodwill credit on top of the refund [1].", ""),
    ("allergen_agent", "negation", U, "The RC-20 refund counts against the agent's approval limits [1].", ""),
    ("allergen_agent", "unsaid", U, "Refund only the affected dish with reason code RC-20 [1].", ""),
    ("allergen_agent", "unsaid", U, "The frontline agent decides on any further compensation [1].", ""),
    ("allergen_agent", "no_claim", U, "Thanks for asking [1].", ""),
    ("allergen_agent", "heading_echo", U, "What the frontline agent does [1].", ""),
    # experts: allergen incident, restaurant consequences
    ("allergen_consequences", "extractive", S, "Second confirmed case within 12 months: restaurant paused for at least 7 days [1].", ""),
    ("allergen_consequences", "paraphrase", S, "After a first confirmed undeclared allergen, the restaurant gets a written warning and must do allergen retraining within 30 days [1].", ""),
    ("allergen_consequences", "paraphrase", S, "A single FS-1 caused by gross negligence is enough to end the partnership immediately [1].", ""),
    ("allergen_consequences", "wrong_number", U, "A second confirmed case within 12 months pauses the restaurant for at least 14 days [1].", ""),
    ("allergen_consequences", "wrong_number", U, "After a first confirmed undeclared allergen, allergen retraining must be done within 60 days [1].", ""),
    ("allergen_consequences", "unsaid", U, "The first confirmed undeclared allergen pauses the restaurant for at least 7 days [1].", ""),
    ("allergen_consequences", "source_echo", U, "The source is: Internal procedure: Allergen and food safety incidents — Restaurant consequences [1].", ""),
    # experts: allegations against a courier
    ("courier_allegation", "extractive", S, "A temporary suspension lasts at most 72 hours [1].", ""),
    ("courier_allegation", "extractive", S, "Do not share the complainant's identity [1].", ""),
    ("courier_allegation", "paraphrase", S, "Only the Head of Courier Operations can extend a temporary suspension [1].", ""),
    ("courier_allegation", "paraphrase", S, "A courier who is deactivated can appeal using the process described in the Courier Handbook [1].", ""),
    ("courier_allegation", "wrong_number", U, "A temporary suspension lasts at most 48 hours [1].", ""),
    ("courier_allegation", "negation", U, "You may tell the courier who made the complaint [1].", ""),
    ("courier_allegation", "unsaid", U, "The Head of Courier Operations may suspend the courier, and only the Safety Lead can extend the suspension [1].", ""),
    ("courier_allegation", "unsaid", U, "The courier is told about the suspension by phone [1].", ""),
    ("courier_allegation", "heading_echo", U, "Allegations against a courier [1].", ""),
    # experts: welfare follow-up
    ("courier_welfare", "extractive", S, "After every C1 incident, offer the courier up to 3 free sessions with our external counselling partner [1].", ""),
    ("courier_welfare", "paraphrase", S, "A courier who cannot work after a C1 incident is paid their average daily earnings for up to 5 days, on top of any insurance payment [1].", ""),
    ("courier_welfare", "wrong_number", U, "Couriers keep being paid their average daily earnings for up to 10 days after a C1 incident [1].", ""),
    ("courier_welfare", "wrong_number", U, "After every C1 incident, call the courier again after 14 days [1].", ""),
    ("courier_welfare", "unsaid", U, "The free counselling sessions are also offered after C2 incidents [1].", ""),
    ("courier_welfare", "heading_echo", U, "Welfare follow-up [1].", ""),
    # Python FAQ (library): executable scripts
    ("lib_executable", "extractive", S, "The script file’s mode must be executable and the first line must begin with #! followed by the path of the Python interpreter [1].", ""),
    ("lib_executable", "paraphrase", S, "With #!/usr/bin/env python the script does not depend on where the interpreter is installed, as long as it is on the user’s PATH [1].", ""),
    ("lib_executable", "paraphrase", S, "You should not use the env program in the #! line of CGI scripts [1].", ""),
    ("lib_executable", "negation", U, "The #!/usr/bin/env python line is recommended for CGI scripts [1].", ""),
    ("lib_executable", "unsaid", U, "Running chmod +x scriptfile also adds the #! line to the script [1].", ""),
    ("lib_executable", "heading_echo", U, "How do I make a Python script executable on Unix [1]?", ""),
    # Python FAQ (library): threads that do not run
    ("lib_threads", "extractive", S, "As soon as the main thread exits, all threads are killed [1].", ""),
    ("lib_threads", "paraphrase", S, "On many platforms the OS thread scheduler does not start a new thread until the previous one is blocked [1].", ""),
    ("lib_threads", "paraphrase", S, "A tiny sleep at the start of the run function can keep the threads from running one at a time [1].", ""),
    ("lib_threads", "negation", U, "When the main thread exits, the other threads keep running until they finish [1].", ""),
    ("lib_threads", "unsaid", U, "The global interpreter lock is the reason the threads appear to run one at a time [1].", ""),
    ("lib_threads", "lead_in", S, "According to the FAQ, one simple fix is to add a sleep to the end of the program that is long enough for all the threads to finish [1].", ""),
    # Python FAQ (library): copying files
    ("lib_copy", "extractive", S, "The shutil module contains a copyfile() function [1].", ""),
    ("lib_copy", "paraphrase", S, "shutil.copy2() keeps most, but not all, of a file's permissions and metadata [1].", ""),
    ("lib_copy", "negation", U, "shutil.copyfile() copies file permissions and metadata [1].", ""),
    ("lib_copy", "unsaid", U, "shutil.copy2() preserves all of a file's permissions and metadata [1].", ""),
    ("lib_copy", "heading_echo", U, "How do I copy a file [1]?", ""),
    # Python FAQ (library): random numbers
    ("lib_random", "extractive", S, "The standard module random implements a random number generator [1].", ""),
    ("lib_random", "paraphrase", S, "random.random() returns a floating point number from 0 up to, but not including, 1 [1].", ""),
    ("lib_random", "abbreviation", S, "shuffle(L) shuffles a list in-place, i.e. permutes it randomly [1].", ""),
    ("lib_random", "wrong_number", U, "random.random() returns a random floating point number in the range [0, 10) [1].", ""),
    ("lib_random", "negation", U, "shuffle(L) returns a new shuffled list and leaves L unchanged [1].", ""),
    ("lib_random", "unsaid", U, "randrange(a, b) chooses a floating point number in the range [a, b) [1].", ""),
    ("lib_random", "repeat", U, "The standard module random implements a random number generator [1].",
     "The standard module random implements a random number generator [1]."),
    ("lib_random", "heading_echo", U, "How do I generate random numbers in Python [1]?", ""),
    # Python FAQ (design): floating point
    ("design_float", "extractive", S, "The float type in CPython uses a C double for storage [1].", ""),
    ("design_float", "paraphrase", S, "As far as floating-point operations go, Python behaves like C and Java [1].", ""),
    ("design_float", "abbreviation", S, "In Python, 1.2 - 1.0 gives 0.19999999999999996, and this is not a bug in Python [1].", ""),
    ("design_float", "wrong_number", U, "A float object's value is stored in binary floating-point with a fixed precision of typically 64 bits [1].", ""),
    ("design_float", "negation", U, "The result of 1.2 - 1.0 in Python is caused by a bug in Python [1].", ""),
    ("design_float", "unsaid", U, "Python performs floating-point operations in its own software, independently of the processor [1].", ""),
    ("design_float", "heading_echo", U, "Why are floating-point calculations so inaccurate [1]?", ""),
    # Python FAQ (design): assignment expressions
    ("design_walrus", "abbreviation", S, "Starting in Python 3.8, you can assign a variable in an expression with the walrus operator := [1].", ""),
    ("design_walrus", "wrong_number", U, "Assignment expressions were added in Python 3.6 [1].", ""),
    ("design_walrus", "unsaid", U, "Assignment expressions can only be used in the condition of a while loop [1].", ""),
    ("design_walrus", "answer_is", U, "The answer is yes [1].", ""),
    ("design_walrus", "heading_echo", U, "Why can’t I use an assignment in an expression [1]?", ""),
    # Python FAQ (design): lists
    ("design_lists", "extractive", S, "CPython’s lists are really variable-length arrays, not Lisp-style linked lists [1].", ""),
    ("design_lists", "paraphrase", S, "Indexing a list costs the same no matter how long the list is or which index you use [1].", ""),
    ("design_lists", "paraphrase", S, "When the array has to grow, CPython allocates extra room so the next few appends need no resize [1].", ""),
    ("design_lists", "negation", U, "CPython’s lists are implemented as Lisp-style linked lists [1].", ""),
    ("design_lists", "unsaid", U, "When items are removed, the array of references is shrunk right away [1].", ""),
    ("design_lists", "truncated", U, "CPython’s lists are really variable-length arrays, not Lisp-style", ""),
    ("design_lists", "heading_echo", U, "How are lists implemented in CPython [1]?", ""),
    # Python FAQ (design): list.sort()
    ("design_sort", "extractive", S, "list.sort() sorts the list in place [1].", ""),
    ("design_sort", "paraphrase", S, "The built-in sorted() builds a new list from any iterable, sorts it and returns it [1].", ""),
    ("design_sort", "negation", U, "list.sort() returns the sorted list [1].", ""),
    ("design_sort", "unsaid", U, "sorted() sorts the list in place, while list.sort() returns a new list [1].", ""),
    ("design_sort", "repeat", U, "list.sort() sorts the list in place [1].",
     "list.sort() sorts the list in place [1]. It does not return the sorted list [1]."),
    # Python FAQ (installed): can I delete Python?
    ("installed_delete", "extractive", S, "If Python came with your operating system, removing it is not recommended [1].", ""),
    ("installed_delete", "paraphrase", S, "To remove a Python that came with another application, use that application's uninstaller instead of deleting Python directly [1].", ""),
    ("installed_delete", "paraphrase", S, "On Windows, a deliberately installed Python can be removed with Add/Remove Programs in the Control Panel [1].", ""),
    ("installed_delete", "negation", U, "Removing the Python that came with your operating system is safe [1].", ""),
    ("installed_delete", "unsaid", U, "If you remove the Python that came with your operating system, reinstalling Python alone fixes things again [1].", ""),
    ("installed_delete", "no_claim", U, "It depends [1].", ""),
    ("installed_delete", "title_only", U, "Many people wonder why Python is installed on their computer [1].", ""),
    # Python FAQ (windows): .pyd files
    ("win_pyd", "extractive", S, "If you have a DLL named foo.pyd, then it must have a function PyInit_foo() [1].", ""),
    ("win_pyd", "paraphrase", S, "Python looks for foo.pyd on PYTHONPATH, which is not the path Windows uses to find foo.dll [1].", ""),
    ("win_pyd", "abbreviation", S, "When you write import foo, Python also searches for foo.py and foo.pyc, i.e. not only for foo.pyd [1].", ""),
    ("win_pyd", "negation", U, "You should link your .exe with foo.lib [1].", ""),
    ("win_pyd", "unsaid", U, "foo.pyd must be present for your program to start, even if it never imports foo [1].", ""),
    ("win_pyd", "heading_echo", U, "Is a *.pyd file the same as a DLL [1]?", ""),
    # Python FAQ (windows): tabs
    ("win_tabs", "extractive", S, "Under any editor, mixing tabs and spaces is a bad idea [1].", ""),
    ("win_tabs", "paraphrase", S, "The tabnanny module can check a whole directory tree in batch mode [1].", ""),
    ("win_tabs", "abbreviation", S, "PEP 8 recommends 4 spaces for distributed Python code, i.e. the same as the Emacs python-mode default [1].", ""),
    ("win_tabs", "wrong_number", U, "PEP 8 recommends 2 spaces for distributed Python code [1].", ""),
    ("win_tabs", "negation", U, "The FAQ recommends using tabs [1].", ""),
    ("win_tabs", "unsaid", U, "Python converts tabs to spaces automatically when it finds mixed indentation [1].", ""),
    # Python FAQ (gui): toolkits
    ("gui_toolkits", "extractive", S, "Tcl/Tk is fully portable to the macOS, Windows, and Unix platforms [1].", ""),
    ("gui_toolkits", "paraphrase", S, "tkinter, an interface to the Tcl/Tk widget set, comes with standard builds of Python [1].", ""),
    ("gui_toolkits", "unsaid", U, "tkinter is the only GUI toolkit that works on every platform [1].", ""),
    ("gui_toolkits", "title_only", U, "Python has a FAQ about graphic user interfaces [1].", ""),
    ("gui_toolkits", "heading_echo", U, "What GUI toolkits exist for Python [1]?", ""),
    # Python FAQ (extending): C++
    ("ext_cpp", "extractive", S, "Place extern \"C\" { ... } around the Python include files [1].", ""),
    ("ext_cpp", "paraphrase", S, "Global or static C++ objects with constructors should probably be avoided [1].", ""),
    ("ext_cpp", "negation", U, "Global or static C++ objects with constructors are a good idea [1].", ""),
    ("ext_cpp", "unsaid", U, "Put extern \"C\" before every function in the extension, including helpers the interpreter never calls [1].", ""),
    ("ext_cpp", "answer_is", U, "The answer is yes [1].", ""),
    ("ext_cpp", "heading_echo", U, "Can I create my own functions in C++ [1]?", ""),
]


def check_new(chunks: dict[str, dict[str, object]]) -> None:
    """Refuse a chunk the first set already uses, so the two sets stay disjoint."""
    with FIRST_SET.open(encoding="utf-8") as rows:
        used = {json.loads(row)["chunk"]["text"] for row in rows}
    reused = sorted(name for name, chunk in chunks.items() if chunk["text"] in used)
    if reused:
        raise SystemExit(f"chunks already in {FIRST_SET.name}: {reused}")


def main() -> None:
    chunks = load_chunks(CHUNKS)
    check_new(chunks)
    with OUT.open("w", encoding="utf-8") as out:
        for number, (name, kind, supported, sentence, context) in enumerate(PAIRS):
            record = {"id": number, "split": "heldout2", "kind": kind, "supported": supported, "sentence": sentence,
                      "context": context, "chunk": chunks[name]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    kinds = Counter(kind for _, kind, _, _, _ in PAIRS)
    print(f"{len(PAIRS)} pairs over {len({name for name, *_ in PAIRS})} chunks -> {OUT}: {dict(kinds)}")


if __name__ == "__main__":
    main()
