"""Check samples/tasks/data/menu.jsonl: valid tags, consistent dietary flags, enough of every label.

    .venv/bin/python samples/tasks/check_menu.py

The dietary rules are read from each item's description, so a flag is only set when every listed ingredient
allows it. Keyword rules cannot prove a label right, but they catch the usual slips (a ham pizza marked
vegetarian, naan marked gluten-free, a dessert with a spice level). Exits 1 and lists every violation.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from lorag.finetune.data import load_records  # noqa: E402 - after the path above
from lorag.finetune.tasks import load_task  # noqa: E402

MIN_PER_CUISINE, MIN_PER_DISH_TYPE = 25, 20

# Phrases that name an ingredient's absence or a safe variant; removed before the keyword rules run.
SAFE = re.compile(r"kombu dashi|no fish sauce|shrimp-paste-free|egg-free|bread-free|dairy-free|no milk|no cheese|"
                  r"vegan \w+|vegetarian hard cheese|coconut (milk )?(ice )?cream|coconut milk|coconut and egg custard|"
                  r"soy milk|soy beans|tiger nut milk|root beer|butter (beans|lettuce)|gram and rice flour batter|"
                  r"rice flour dumplings|rice flour|"
                  r"rice and lentil crêpe|oyster mushrooms", re.IGNORECASE)
MEAT = re.compile(r"\b(chicken|beef|pork|lamb|veal|duck|rabbit|bacon|ham|prosciutto|salami|chorizo|sausage|"
                  r"guanciale|lardons|jamón|mince|brisket|ribs|wings|kebab|kofta|fish|salmon|tuna|cod|sea bass|"
                  r"bream|sole|kingfish|basa|yellowtail|eel|prawns?|shrimp|crab|lobster|clams|mussels|squid|"
                  r"calamari|octopus|anchov\w*|snails|bonito|dashi|gelatine|oyster sauce|shrimp paste|chashu|"
                  r"char siu|cutlets|steak|sirloin|ribeye|terrine|awarma|taouk|shawarma|carnitas|barbacoa|"
                  r"tobiko|sashimi|parmesan|pecorino|gorgonzola)\b", re.IGNORECASE)
GLUTEN = re.compile(r"\b(wheat|flour|bread|breadcrumbs?|breaded|breadsticks|béchamel|roux|panko|tempura|batter|"
                    r"battered|pasta|"
                    r"spaghetti|penne|linguine|tagliatelle|lasagne|ravioli|gnocchi|ditalini|macaroni|pizza|"
                    r"focaccia|ciabatta|baguette|bruschetta|sourdough|croutons|croûte|toast|toastie|naan|roti|"
                    r"pita|flatbread|lavash|saj|khubz|manakish|buns?|brioche|hoagie|buttered roll|noodles|udon|"
                    r"ramen|lo mein|chow mein|vermicelli|couscous|bulgur|barley|rye|semolina|filo|pastry|choux|"
                    r"pies?|tarts?|(?<!fish )cakes?|cheesecake|cookies|biscuit|crackers|graham|waffle|pancakes|crêpes?|"
                    r"(?<!cheese )(?<!rice )dumplings|wontons|gyoza|bao|samosas|sambousek|wafers|sev|soy|teriyaki|"
                    r"hoisin|miso|"
                    r"doubanjiang|chilli bean|black bean sauce|kabayaki|tonkatsu sauce|takoyaki sauce|black vinegar|"
                    r"soybean paste|crab stick|beer|churros|sopapillas|doughnuts|brownie|sponge|savoiardi|rusk|"
                    r"dorayaki|éclair|profiteroles|cannoli|baklava|kunafa|basbousa|ma'amoul|gulab jamun|"
                    r"curry sauce|galette)\b", re.IGNORECASE)
RICE_NOODLES = re.compile(r"\b(rice|glass|mung bean) noodles\b", re.IGNORECASE)
DAIRY = re.compile(r"\b(milk|butter|buttery|cheese|cheddar|mozzarella|burrata|ricotta|mascarpone|parmesan|"
                   r"pecorino|gorgonzola|fontina|feta|halloumi|paneer|ghee|cream|crème|yoghurt|labneh|ayran|lassi|"
                   r"raita|tzatziki|béchamel|béarnaise|gelato|kulfi|custard|crema|queso|cotija|provolone|gruyère|"
                   r"emmental|comté|akkawi|kefalograviera|jameed|condensed|evaporated|ranch|milkshake|cappuccino|"
                   r"latte|lait|champurrado|rasmalai|kheer|halwa|muhallebi|bastani|cajeta|ganache|pepper jack|"
                   r"chèvre|mac & cheese|creamy|buttermilk|buttered|brioche|gratin|naan|hot chocolate|cheesecake)\b",
                   re.IGNORECASE)
NOT_VEGAN = re.compile(r"\b(honey|eggs?|mayo|mayonnaise|aioli|meringue|omelette|tamagoyaki|macarons)\b", re.IGNORECASE)
HEAT = re.compile(r"\b(chilli|chillies|chile|chili|jalapeños?|habanero|serrano chilli|chipotle|cayenne|sriracha|"
                  r"zhoug|bird's eye|vindaloo|madras|jalfrezi|doubanjiang|salsa macha|tajín|aleppo pepper|"
                  r"pepper flakes|sichuan pepper|padrón|chamoy|buffalo (wings|sauce|chicken)|diavola|arrabbiata|diabla|"
                  r"harra|pasilla|"
                  r"guajillo|árbol)\b", re.IGNORECASE)


def problems_of(item: str, tags: dict) -> list[str]:
    text = SAFE.sub("", item)
    diet, problems = set(tags["dietary"]), []
    if "vegan" in diet and not {"vegetarian", "dairy-free"} <= diet:
        problems.append("vegan without vegetarian and dairy-free")
    if "vegetarian" in diet and (hit := MEAT.search(text)):
        problems.append(f"vegetarian but names {hit.group(0)!r}")
    gluten = GLUTEN.search(RICE_NOODLES.sub("", text))
    if "gluten-free" in diet and gluten:
        problems.append(f"gluten-free but names {gluten.group(0)!r}")
    if "dairy-free" in diet and (hit := DAIRY.search(text)):
        problems.append(f"dairy-free but names {hit.group(0)!r}")
    if "vegan" in diet and (hit := NOT_VEGAN.search(text)):
        problems.append(f"vegan but names {hit.group(0)!r}")
    heat = HEAT.search(text)
    if tags["dish_type"] == "dessert" and tags["spice_level"] != "none":
        problems.append("a dessert with a spice level")
    if heat and tags["spice_level"] == "none":
        problems.append(f"spice_level none but names {heat.group(0)!r}")
    return problems


def main() -> int:
    task = load_task(REPO / "samples" / "tasks" / "menu-tagging.yaml")
    records = load_records(task)  # raises on any row that does not fit the taxonomy
    problems = [f"{r.prompt[:50]}: {p}" for r in records for p in problems_of(r.prompt, dict(r.output))]
    names = Counter(r.prompt.split(" — ")[0].lower() for r in records)
    problems += [f"duplicate item name {name!r}" for name, count in names.items() if count > 1]
    counts = {field: Counter() for field in ("cuisine", "dish_type", "dietary", "spice_level")}
    for record in records:
        for field, value in record.output.items():
            counts[field].update(value if isinstance(value, list) else [value])
    problems += [f"cuisine {c}: {counts['cuisine'][c]} items (want {MIN_PER_CUISINE})"
                 for c in task.taxonomy.fields["cuisine"].values if counts["cuisine"][c] < MIN_PER_CUISINE]
    problems += [f"dish_type {d}: {counts['dish_type'][d]} items (want {MIN_PER_DISH_TYPE})"
                 for d in task.taxonomy.fields["dish_type"].values if counts["dish_type"][d] < MIN_PER_DISH_TYPE]
    problems += [f"no item with spice_level {s}" for s in ("none", "hot") if not counts["spice_level"][s]]
    print(f"{len(records)} items")
    for field, counter in counts.items():
        print(f"{field}: " + ", ".join(f"{value} {n}" for value, n in counter.most_common()))
    for problem in problems:
        print("PROBLEM", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
