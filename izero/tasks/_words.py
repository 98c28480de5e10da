"""Small embedded word lists for the built-in tasks (no data file needed)."""

from __future__ import annotations

_NOUNS_TEXT = """
    apple table chair window garden river mountain forest city country family story party
    army study baby lady cherry berry puppy bottle pencil book paper letter number picture
    camera phone computer doctor teacher student farmer driver singer painter writer player
    bird horse tiger lion rabbit monkey turtle snake spider eagle dolphin whale shark donkey
    flower tree leaf knife wife life wolf shelf loaf half calf thief box fox bus glass dish
    brush church watch match class dress kiss wish beach bench lunch peach coach tax
    child man woman person mouse foot tooth goose ox
    key boy toy day tray monkey valley journey chimney turkey
    road street bridge tower castle palace temple house room kitchen door wall floor roof
    garden island ocean desert valley lake pond field farm village market school office
    engine wheel car truck train plane boat ship rocket bicycle ticket wallet pocket jacket
    shirt sock shoe boot hat glove scarf ring necklace button ribbon blanket pillow carpet
    candle lamp clock mirror basket bucket hammer ladder rope chain needle thread bell drum
    guitar piano violin trumpet song poem novel movie game puzzle question answer problem
    idea dream memory reason secret promise lesson letter message signal sound voice noise
    cloud storm rainbow planet comet star moon stone rock sand shell pearl crystal diamond
    bread cake cookie pie sandwich salad soup onion carrot potato tomato lemon melon banana
    orange grape mango pepper garlic cheese butter egg noodle biscuit muffin pancake
    hero zero echo volcano mosquito piano photo radio video studio zoo kangaroo
    city ability quality theory memory library century factory battery company county
    """
#: Common English nouns (singular), lower-case ASCII, no duplicates.
NOUNS: tuple[str, ...] = tuple(dict.fromkeys(_NOUNS_TEXT.split()))

#: Nouns whose plural does not follow the spelling rules in :func:`pluralize`.
IRREGULAR_PLURALS: dict[str, str] = {
    "child": "children",
    "man": "men",
    "woman": "women",
    "person": "people",
    "mouse": "mice",
    "foot": "feet",
    "tooth": "teeth",
    "goose": "geese",
    "ox": "oxen",
    "knife": "knives",
    "wife": "wives",
    "life": "lives",
    "wolf": "wolves",
    "shelf": "shelves",
    "loaf": "loaves",
    "half": "halves",
    "calf": "calves",
    "thief": "thieves",
    "leaf": "leaves",
    "scarf": "scarves",
    "hero": "heroes",
    "echo": "echoes",
    "volcano": "volcanoes",
    "mosquito": "mosquitoes",
    "potato": "potatoes",
    "tomato": "tomatoes",
}

#: Animals with a typical adult mass in kilograms (orders of magnitude, for larger_animal).
ANIMAL_MASS_KG: dict[str, float] = {
    "ant": 0.000003,
    "bee": 0.0001,
    "butterfly": 0.0005,
    "spider": 0.001,
    "snail": 0.005,
    "frog": 0.02,
    "mouse": 0.03,
    "sparrow": 0.03,
    "hamster": 0.15,
    "squirrel": 0.5,
    "pigeon": 0.4,
    "rat": 0.3,
    "guinea pig": 1.0,
    "rabbit": 2.0,
    "chicken": 2.5,
    "cat": 4.5,
    "fox": 7.0,
    "beagle": 10.0,
    "turkey": 9.0,
    "goose": 6.0,
    "raccoon": 8.0,
    "koala": 10.0,
    "goat": 60.0,
    "sheep": 80.0,
    "wolf": 45.0,
    "golden retriever": 30.0,
    "kangaroo": 70.0,
    "pig": 150.0,
    "lion": 190.0,
    "tiger": 220.0,
    "gorilla": 160.0,
    "polar bear": 450.0,
    "horse": 500.0,
    "cow": 700.0,
    "moose": 600.0,
    "camel": 500.0,
    "giraffe": 1200.0,
    "hippopotamus": 1500.0,
    "rhinoceros": 2300.0,
    "elephant": 6000.0,
    "orca": 5000.0,
    "blue whale": 150000.0,
}
