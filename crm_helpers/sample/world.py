"""The fixed world of the sample retailer: places, names, stores, catalogue and campaigns.

Everything here is either a constant or drawn once from the *world* random generator, so it is
identical for every chunk of people and independent of the number of customers.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date
from itertools import combinations

import numpy as np
import pandas as pd

SHOP_DOMAIN = "harbourandhearth.co.uk"

# --- Segments --------------------------------------------------------------------------------
# Latent customer segments, buy-till-you-die (BG/NBD) within each: a person's purchase rate
# (per month, while alive) is drawn from Gamma(shape r, scale) and their dropout probability
# (the chance of leaving right after a *repeat* purchase) from Beta(a, b). Each segment also has
# a signature a clustering can see: basket size, tier mix, first-line category preferences,
# store/web mix, and how strongly campaigns move it (SEGMENT_RESPONSIVENESS).
# Overlaps are designed in: the rate gammas of neighbouring segments overlap (overlap coefficient
# elite/loyal 2%, loyal/regular 50%, regular/occasional 34%), and every other signature is a
# shift in a mix, not a partition (README "Segments and buying (designed in)").
SEGMENTS = ("elite", "loyal", "regular", "occasional")
SEGMENT_SHARE = np.array([0.04, 0.16, 0.38, 0.42])
RATE_SHAPE = np.array([10.0, 6.0, 5.0, 4.0])  # gamma shape r of the personal rate
PURCHASE_RATE = np.array([4.0, 0.8, 0.45, 0.18])  # per month, segment mean = r x scale
RATE_SCALE = PURCHASE_RATE / RATE_SHAPE  # gamma scale (BG/NBD's alpha = 1 / scale, in months)
# Dropout per repeat purchase falls with the rate, so the yearly hazard of leaving differs much
# less than the rates: about 0.48 a year for elite customers (intense and short-lived), 0.14-0.17
# for the others. The betas share a = 1: a wider spread of their means makes BG/NBD's single
# beta under-estimate frequent buyers' dropout and over-predict their next year.
DROPOUT_A = np.array([1.0, 1.0, 1.0, 1.0])  # beta a of the personal dropout probability
DROPOUT_B = np.array([99.0, 66.0, 32.0, 12.0])  # beta b: means 0.010, 0.015, 0.030, 0.077
DROPOUT_PROB = DROPOUT_A / (DROPOUT_A + DROPOUT_B)  # segment mean (per repeat purchase)
CALL_RATE = np.array([0.03, 0.02, 0.016, 0.013])  # call-centre contacts per month, segment mean
EXTRA_LINE_PROB = np.array([0.70, 0.30, 0.15, 0.04])  # lines per order = 1 + Binomial(3, p)
EXTRA_QTY_MEAN = np.array([0.50, 0.25, 0.12, 0.05])  # qty = 1 + Poisson(mean)
# Tiers drift by at most one step at a purchase (up with TIER_UP_P, down with TIER_DOWN_P); a
# person's first tier is drawn from the drift's stationary mix, so each segment's tier mix
# stays put over time: proportional to (1, u/d, (u/d)^2).
TIER_UP_P = np.array([0.032, 0.022, 0.013, 0.008])
TIER_DOWN_P = np.array([0.008, 0.018, 0.027, 0.032])
_TIER_RATIO = TIER_UP_P / TIER_DOWN_P
INITIAL_TIER_P = np.stack([np.ones(4), _TIER_RATIO, _TIER_RATIO ** 2], axis=1)
INITIAL_TIER_P = INITIAL_TIER_P / INITIAL_TIER_P.sum(axis=1, keepdims=True)
# Category of an order's first line (Clothing, Footwear, Accessories, Home, Kitchen, Beauty,
# Electronics, Garden): elite buy electronics and footwear, loyal clothing and beauty, regular
# home, kitchen and garden, occasional customers accessories (gifts) and a little of everything.
FIRST_CATEGORY_P = np.array([
    [0.10, 0.25, 0.05, 0.10, 0.04, 0.03, 0.40, 0.03],
    [0.45, 0.05, 0.12, 0.03, 0.02, 0.30, 0.02, 0.01],
    [0.05, 0.04, 0.03, 0.32, 0.28, 0.03, 0.03, 0.22],
    [0.15, 0.10, 0.35, 0.08, 0.07, 0.15, 0.05, 0.05],
])
# Campaign responsiveness: multiplier of a campaign's designed uplift by segment (the campaign
# design reads it; 1 = an average customer).
SEGMENT_RESPONSIVENESS = np.array([0.5, 0.8, 1.0, 1.3])
COMPLAINT_DROPOUT_MULTIPLIER = 3.0
TIERS = ("basic", "plus", "premium")
OWN_TIER_SHARE = 0.85  # share of order lines taken from the customer's current tier

# --- Existing base ---------------------------------------------------------------------------
# The retailer did not open in the window: people were signing up for EXISTING_BASE_YEARS
# before it at a constant daily intake equal to the window's starting intake (which then grows,
# people.ACQUISITION_GROWTH). Their history before the window is simulated (it decides who is
# still a customer) but only the master records (with the old sign-up dates) are exported.
EXISTING_BASE_YEARS = 5.0

# --- Channels --------------------------------------------------------------------------------
ACQUISITION_CHANNELS = ("store", "web", "callcentre")
ACQUISITION_P = np.array([0.55, 0.35, 0.10])
CARD_P = np.array([0.95, 0.35, 0.50])  # chance of holding a loyalty card, by acquisition channel
STORE_PREFERENCE = np.array([0.80, 0.25, 0.55])  # mean share of purchases made in store
# Store share by segment: elite and regular customers shop in store, loyal and occasional ones
# mostly online. A card holder's mean store share is SEGMENT_STORE_WEIGHT x this + the rest x
# STORE_PREFERENCE of the acquisition channel; people without a card buy online. The chance of
# holding a card mixes the segment's (SEGMENT_CARD_P) and the acquisition channel's (CARD_P).
SEGMENT_STORE_PREFERENCE = np.array([0.85, 0.20, 0.85, 0.15])
SEGMENT_STORE_WEIGHT = 0.85
STORE_PREFERENCE_CONCENTRATION = 8.0  # beta a + b of the personal store share
SEGMENT_CARD_P = np.array([0.97, 0.50, 0.95, 0.40])
SEGMENT_CARD_WEIGHT = 0.7

EMAIL_OPT_IN_P, SMS_OPT_IN_P, DO_NOT_CONTACT_P = 0.62, 0.38, 0.03

REASON_CODES = ("COMPLAINT", "DELIVERY", "BILLING", "PRODUCT_INFO", "RETURN", "ACCOUNT")
REASON_P = np.array([0.15, 0.25, 0.12, 0.20, 0.15, 0.13])
OUTCOMES = ("resolved", "escalated", "callback")
OUTCOME_P = np.array([[0.45, 0.35, 0.20], [0.75, 0.05, 0.20]])  # row 0: complaints, row 1: others

# --- Places ----------------------------------------------------------------------------------
REGIONS = ("London", "South East", "Midlands", "North West", "Yorkshire & North East", "Scotland")
REGION_P = np.array([0.24, 0.20, 0.17, 0.15, 0.13, 0.11])
# city, region index, postcode areas
CITIES = (
    ("London", 0, ("E", "N", "SE", "SW", "W", "NW")),
    ("Brighton", 1, ("BN",)),
    ("Reading", 1, ("RG",)),
    ("Guildford", 1, ("GU",)),
    ("Canterbury", 1, ("CT",)),
    ("Birmingham", 2, ("B",)),
    ("Nottingham", 2, ("NG",)),
    ("Leicester", 2, ("LE",)),
    ("Coventry", 2, ("CV",)),
    ("Manchester", 3, ("M",)),
    ("Liverpool", 3, ("L",)),
    ("Preston", 3, ("PR",)),
    ("Leeds", 4, ("LS",)),
    ("Sheffield", 4, ("S",)),
    ("Newcastle upon Tyne", 4, ("NE",)),
    ("York", 4, ("YO",)),
    ("Glasgow", 5, ("G",)),
    ("Edinburgh", 5, ("EH",)),
    ("Aberdeen", 5, ("AB",)),
    ("Dundee", 5, ("DD",)),
)
STORES = (
    ("S001", "London Oxford Street", 0),
    ("S002", "London Westfield Stratford", 0),
    ("S003", "London Clapham", 0),
    ("S004", "London Islington", 0),
    ("S005", "Brighton Churchill Square", 1),
    ("S006", "Reading Oracle", 1),
    ("S007", "Guildford High Street", 1),
    ("S008", "Canterbury Whitefriars", 1),
    ("S009", "Birmingham Bullring", 2),
    ("S010", "Nottingham Victoria", 2),
    ("S011", "Leicester Highcross", 2),
    ("S012", "Coventry West Orchards", 2),
    ("S013", "Manchester Arndale", 3),
    ("S014", "Liverpool One", 3),
    ("S015", "Preston Fishergate", 3),
    ("S016", "Manchester Trafford", 3),
    ("S017", "Leeds Briggate", 4),
    ("S018", "Sheffield Meadowhall", 4),
    ("S019", "Newcastle Eldon Square", 4),
    ("S020", "York Coppergate", 4),
    ("S021", "Glasgow Buchanan Street", 5),
    ("S022", "Edinburgh Princes Street", 5),
    ("S023", "Aberdeen Union Square", 5),
    ("S024", "Dundee Overgate", 5),
)
TRAINING_STORE = ("S000", "Training till", 0)
HOME_STORE_SHARE = 0.85
STREET_STEMS = (
    "Church", "High", "Station", "Victoria", "Park", "Mill", "School", "Queens", "Kings",
    "Manor", "Grange", "Chestnut", "Oak", "Elm", "Willow", "Meadow", "Orchard", "Springfield",
    "Highfield", "Windsor", "York", "Albert", "Alexandra", "Beech", "Birch", "Cedar", "Clarence",
    "Farm", "Green", "Hill", "Lime", "Maple", "North", "South", "West", "Poplar", "Priory",
    "Richmond", "Rose", "St Johns", "St Marys", "Stanley", "Sycamore", "The Crescent", "Market",
    "Bridge", "Castle", "Abbey", "Heath", "Hawthorn", "Holly", "Ivy", "Jubilee", "Lancaster",
    "Marlborough", "Nelson", "Norfolk", "Osborne", "Rectory", "Sandy",
)
STREET_SUFFIXES = ("Road", "Street", "Lane", "Avenue", "Close", "Drive", "Way", "Gardens",
                   "Crescent", "Terrace", "Place", "Grove")
POSTCODE_UNIT_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))

# --- Names -----------------------------------------------------------------------------------
FIRST_NAMES = (
    "Oliver", "George", "Harry", "Noah", "Jack", "Leo", "Arthur", "Muhammad", "Oscar", "Charlie",
    "Jacob", "Thomas", "Henry", "William", "Joshua", "James", "Alfie", "Freddie", "Theo", "Archie",
    "Isaac", "Alexander", "Edward", "Finley", "Max", "Lucas", "Logan", "Ethan", "Teddy", "Mason",
    "Daniel", "Samuel", "Joseph", "Harrison", "Sebastian", "Adam", "Reuben", "Elijah", "Benjamin",
    "Albie", "Dylan", "Arlo", "Louie", "Jaxon", "Rory", "Toby", "Tommy", "Hugo", "Ezra", "Frankie",
    "Ronnie", "Jude", "Zachary", "David", "Michael", "Andrew", "Paul", "Mark", "Stephen", "Peter",
    "Richard", "John", "Robert", "Christopher", "Matthew", "Anthony", "Simon", "Gary", "Ian",
    "Kevin", "Neil", "Graham", "Colin", "Keith", "Stuart", "Martin", "Philip", "Nigel", "Adrian",
    "Darren", "Wayne", "Craig", "Lee", "Jason", "Dean", "Carl", "Scott", "Ross", "Jamie", "Liam",
    "Connor", "Callum", "Kieran", "Declan", "Ryan", "Aaron", "Nathan", "Luke", "Owen", "Rhys",
    "Gareth", "Dafydd", "Hamish", "Angus", "Fraser", "Euan", "Alistair", "Malcolm", "Duncan",
    "Niall", "Seán", "Ciarán", "Eóin", "Pádraig", "Oisín", "Cillian", "Darragh", "Tadhg",
    "José", "Raúl", "Joaquín", "Andrés", "Ángel", "Jesús", "François", "Jérôme", "Rémi", "Loïc",
    "Björn", "Søren", "Jürgen", "Günter", "Stefan", "Marco", "Luca", "Matteo", "Giovanni", "Piotr",
    "Tomasz", "Mateusz", "Kamil", "Ahmed", "Omar", "Yusuf", "Ibrahim", "Hassan", "Ali", "Bilal",
    "Raj", "Arjun", "Rohan", "Vikram", "Sanjay", "Amit", "Kwame", "Kofi", "Chidi", "Emeka",
    "Olivia", "Amelia", "Isla", "Ava", "Ivy", "Freya", "Lily", "Florence", "Mia", "Willow",
    "Rosie", "Sophia", "Isabella", "Grace", "Daisy", "Sienna", "Poppy", "Elsie", "Emily", "Ella",
    "Evelyn", "Phoebe", "Sofia", "Evie", "Charlotte", "Harper", "Millie", "Matilda", "Maya",
    "Sophie", "Alice", "Emilia", "Isabelle", "Ruby", "Luna", "Maisie", "Aria", "Penelope", "Mila",
    "Bonnie", "Eva", "Hallie", "Eliza", "Ada", "Violet", "Esme", "Arabella", "Imogen", "Jessica",
    "Sarah", "Emma", "Laura", "Rebecca", "Hannah", "Katie", "Lauren", "Amy", "Rachel", "Gemma",
    "Claire", "Nicola", "Helen", "Louise", "Joanne", "Lisa", "Karen", "Julie", "Susan", "Angela",
    "Tracey", "Dawn", "Donna", "Michelle", "Kelly", "Natalie", "Samantha", "Victoria", "Catherine",
    "Elizabeth", "Margaret", "Patricia", "Linda", "Barbara", "Jennifer", "Deborah", "Alison",
    "Fiona", "Kirsty", "Morag", "Ailsa", "Eilidh", "Catriona", "Shona", "Rhiannon", "Cerys",
    "Seren", "Ffion", "Carys", "Bethan", "Siobhán", "Niamh", "Aoife", "Róisín", "Saoirse",
    "Caoimhe", "Clodagh", "Orla", "Sinéad", "Méabh", "Zoë", "Chloë", "Renée", "Anaïs", "Léa",
    "Noémie", "Hélène", "Agnès", "Céline", "Inés", "María", "Lucía", "Mónica", "Begoña", "Inês",
    "Françoise", "Dörte", "Jürgen", "Annika", "Ingrid", "Astrid", "Sigrún", "Giulia", "Chiara",
    "Francesca", "Aleksandra", "Agnieszka", "Katarzyna", "Magdalena", "Fatima", "Aisha", "Zainab",
    "Maryam", "Amina", "Layla", "Priya", "Anjali", "Deepa", "Sunita", "Kavita", "Ngozi", "Chiamaka",
    "Adaeze", "Abena", "Efua", "Mei", "Ling", "Yuki", "Hana", "Ana", "Beatriz", "Carmen", "Dolores",
    "Nadia", "Yasmin", "Leila", "Tamsin", "Jemima", "Harriet", "Beatrice", "Cressida", "Octavia",
    "Philippa", "Rosalind", "Gwendolyn", "Wilhelmina", "Constance", "Edith", "Mabel", "Winifred",
)
COMMON_SURNAMES = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards", "Hughes",
    "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood", "Turner", "Martin",
    "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison",
    "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price",
    "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Richardson", "Bailey",
    "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards", "Khan", "Marshall",
    "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Begum", "Wilkinson", "Foster", "Chapman",
    "Powell", "Webb", "Rogers", "Gray", "Mason", "Ali", "Hunt", "Hussain", "Campbell", "Matthews",
    "Owen", "Palmer", "Holmes", "Mills", "Barnes", "Knight", "Lloyd", "Butler", "Russell",
    "Barker", "Fisher", "Stevens", "Jenkins", "Murray", "Dixon", "Harvey", "Graham", "Pearson",
    "Ahmed", "Fletcher", "Walsh", "Kaur", "Gibson", "Howard", "Andrews", "Stewart", "Elliott",
    "Reynolds", "Saunders", "Payne", "Fox", "Ford", "Pearce", "Day", "Brooks", "West", "Lawrence",
    "Cole", "Atkinson", "Bradley", "Spencer", "Gill", "Dawson", "Ball", "Burton", "O'Brien",
    "Watts", "Rose", "Booth", "Perry", "Ryan", "Grant", "Wells", "Armstrong", "Francis", "Rees",
    "Hayes", "Hart", "Hudson", "Newman", "Barrett", "Webster", "Hunter", "Gregory", "Carr", "Lowe",
    "Page", "Marsh", "Riley", "Dunn", "Woods", "Parsons", "Berry", "Stone", "Reid", "Holland",
    "Hawkins", "Harding", "Porter", "Robertson", "Newton", "Oliver", "Reed", "Kennedy", "Williamson",
    "Bird", "Gardner", "Shah", "Dodd", "Macdonald", "McDonald", "O'Connor", "O'Neill", "Doyle",
    "Quinn", "Nowak", "Kowalski", "Müller", "García", "Fernández", "López", "Martínez", "Sánchez",
    "Pérez", "Gómez", "Núñez", "Peña", "Rossi", "Bianchi", "Okafor", "Mensah", "Nguyen", "Chen",
    "Wang", "Kim", "Tanaka", "Sharma", "Gupta", "Chowdhury", "Rahman", "Mahmood", "Iqbal",
)
# Short forms people give instead of their first name (several per name: one is drawn).
NICKNAMES = {
    "William": ("Bill", "Will", "Billy"), "Elizabeth": ("Liz", "Beth", "Lizzie"),
    "Robert": ("Bob", "Rob", "Bobby"), "Richard": ("Rick", "Dick", "Rich"),
    "James": ("Jim", "Jimmy", "Jamie"), "John": ("Jack", "Johnny"), "Michael": ("Mike", "Mick"),
    "Christopher": ("Chris", "Kit"), "Matthew": ("Matt",), "Anthony": ("Tony", "Ant"),
    "Andrew": ("Andy", "Drew"), "Stephen": ("Steve",), "Peter": ("Pete",), "David": ("Dave",),
    "Daniel": ("Dan", "Danny"), "Samuel": ("Sam",), "Joseph": ("Joe",), "Thomas": ("Tom", "Tommy"),
    "Benjamin": ("Ben",), "Alexander": ("Alex", "Sandy"), "Edward": ("Ed", "Ted", "Eddie"),
    "Henry": ("Harry", "Hal"), "Nicholas": ("Nick",), "Philip": ("Phil",), "Joshua": ("Josh",),
    "Zachary": ("Zach",), "Sebastian": ("Seb",), "Frederick": ("Fred", "Freddie"),
    "Jacob": ("Jake",), "Nathan": ("Nate",), "Isaac": ("Ike",), "Oliver": ("Ollie",),
    "Charlotte": ("Lottie", "Charlie"), "Catherine": ("Kate", "Cathy", "Cat"),
    "Margaret": ("Maggie", "Peggy", "Meg"), "Patricia": ("Pat", "Patty"),
    "Jennifer": ("Jen", "Jenny"), "Rebecca": ("Becky", "Becca"), "Victoria": ("Vicky", "Tori"),
    "Samantha": ("Sam", "Sammy"), "Jessica": ("Jess",), "Deborah": ("Debbie", "Deb"),
    "Susan": ("Sue", "Susie"), "Barbara": ("Barb",), "Isabella": ("Bella", "Izzy"),
    "Isabelle": ("Izzy",), "Amelia": ("Millie",), "Florence": ("Flo",), "Penelope": ("Penny",),
    "Philippa": ("Pippa",), "Harriet": ("Hattie",), "Matilda": ("Tilly",), "Eleanor": ("Ellie",),
    "Abigail": ("Abby",), "Josephine": ("Jo",), "Joanne": ("Jo",), "Nicola": ("Nicky",),
    "Alexandra": ("Alex",), "Gwendolyn": ("Gwen",), "Winifred": ("Winnie",),
    "Wilhelmina": ("Mina",), "Constance": ("Connie",), "Rosalind": ("Ros",),
    "Katarzyna": ("Kasia",), "Aleksandra": ("Ola",), "Magdalena": ("Magda",),
    "Francesca": ("Fran", "Frankie"), "Giovanni": ("Gianni",), "Tomasz": ("Tomek",),
}
# Rarer surnames are built from English place-name syllables so that full names rarely repeat.
_SURNAME_HEADS = (
    "Ash", "Brad", "Black", "Brook", "Cald", "Card", "Craw", "Dal", "Dun", "Ell", "Fair", "Farr",
    "Gil", "Grant", "Hal", "Hart", "Hol", "Kings", "Lang", "Lind", "Mar", "Mel", "Mor", "Nor",
    "Oak", "Pem", "Ram", "Red", "Ros", "Rad", "Sal", "Sher", "Stan", "Stock", "Thorn", "Wal",
    "War", "Whit", "Wood", "Wyn", "Alder", "Bex", "Bram", "Chel", "Cran", "Dray", "East", "Fen",
    "Gold", "Haw", "Kel", "Lox", "Middle", "New", "Pen", "Rich", "Shel", "Tal", "Upp", "Wex",
    "Ayles", "Bur", "Cob", "Der", "Eg", "Frod", "Glen", "Hex", "Ing", "Knot", "Lam", "Mox",
)
_SURNAME_TAILS = (
    "ford", "ley", "ton", "wood", "field", "well", "by", "ham", "worth", "more", "stone", "bridge",
    "combe", "dale", "hurst", "man", "son", "er", "ing", "wick", "croft", "shaw", "thwaite", "bury",
    "cott", "den", "don", "gate", "hill", "holme", "land", "low", "mere", "mouth", "ridge", "sey",
    "stead", "well", "win", "brook", "burn", "cliffe", "ell", "ington", "ock",
)


def ascii_fold(text: str) -> str:
    """Lower-case ASCII form of a name for e-mail addresses (Zoë -> zoe, O'Brien -> obrien)."""
    folded = unicodedata.normalize("NFKD", text.replace("ø", "o").replace("Ø", "O"))
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return "".join(c for c in folded.lower() if c.isalnum())


@dataclass(frozen=True)
class NameBook:
    """Name lists with sampling weights and their ASCII forms (for e-mail addresses)."""

    first: np.ndarray
    first_ascii: np.ndarray
    first_p: np.ndarray
    last: np.ndarray
    last_ascii: np.ndarray
    last_p: np.ndarray
    nicknames: np.ndarray  # (first names, 3): short forms of each, repeated; "" when none


def build_name_book() -> NameBook:
    """Deduplicated first names and surnames with Zipf-like popularity.

    Common surnames carry about 45% of the mass; the syllable surnames share the rest, so that
    different people rarely share first name, surname and postcode.
    """
    first = np.array(list(dict.fromkeys(FIRST_NAMES)))
    common = list(dict.fromkeys(COMMON_SURNAMES))
    built = [h + t for h in _SURNAME_HEADS for t in _SURNAME_TAILS]
    built = [s for s in dict.fromkeys(built) if s not in common]
    last = np.array(common + built)
    first_p = 1.0 / (np.arange(len(first)) + 15.0) ** 0.8
    common_p = 1.0 / (np.arange(len(common)) + 5.0) ** 0.9
    common_p = 0.45 * common_p / common_p.sum()
    built_p = np.full(len(built), 0.55 / len(built))
    last_p = np.concatenate([common_p, built_p])
    return NameBook(
        first=first,
        first_ascii=np.array([ascii_fold(s) for s in first]),
        first_p=first_p / first_p.sum(),
        last=last,
        last_ascii=np.array([ascii_fold(s) for s in last]),
        last_p=last_p / last_p.sum(),
        nicknames=np.array([[NICKNAMES.get(f, ("",))[i % len(NICKNAMES.get(f, ("",)))]
                             for i in range(3)] for f in first]),
    )


EMAIL_PROVIDERS = ("gmail.com", "hotmail.co.uk", "outlook.com", "yahoo.co.uk", "btinternet.com",
                   "icloud.com", "sky.com", "live.co.uk", "aol.com", "virginmedia.com")
EMAIL_PROVIDER_P = np.array([0.34, 0.15, 0.12, 0.10, 0.08, 0.08, 0.05, 0.04, 0.02, 0.02])

# --- Catalogue -------------------------------------------------------------------------------
# category, base price (GBP, basic tier), popularity, product nouns
CATEGORIES = (
    ("Clothing", 22.0, 0.22, ("T-Shirt", "Jumper", "Shirt", "Jeans")),
    ("Footwear", 45.0, 0.10, ("Trainers", "Boots", "Sandals", "Slippers")),
    ("Accessories", 15.0, 0.12, ("Scarf", "Belt", "Wallet", "Umbrella")),
    ("Home", 30.0, 0.14, ("Cushion", "Throw", "Lamp", "Vase")),
    ("Kitchen", 25.0, 0.12, ("Saucepan", "Knife Set", "Mug Set", "Chopping Board")),
    ("Beauty", 12.0, 0.13, ("Hand Cream", "Shower Gel", "Candle", "Face Serum")),
    ("Electronics", 60.0, 0.09, ("Headphones", "Speaker", "Charger", "Smart Plug")),
    ("Garden", 20.0, 0.08, ("Planter", "Trowel Set", "Bird Feeder", "Hose")),
)
TIER_LABEL = ("Essential", "Select", "Signature")
TIER_PRICE_FACTOR = np.array([1.0, 1.9, 3.6])
TIER_COST_SHARE = np.array([0.68, 0.56, 0.44])  # unit cost / list price: margin grows with tier
# Cross-sell, designed at several strengths. An order's first line comes from some category a;
# each further line is drawn "because of" an affinity partner b of a with the pair's strength,
# otherwise from overall popularity. Pairs act in both directions (a -> b and b -> a).
AFFINITY_PAIRS = (  # (category a, category b, kind, strength)
    ("Clothing", "Footwear", "strong", 0.45),
    ("Clothing", "Accessories", "strong", 0.40),
    ("Home", "Kitchen", "strong", 0.60),
    ("Electronics", "Kitchen", "weak", 0.06),
    ("Footwear", "Garden", "weak", 0.22),
    ("Footwear", "Accessories", "weak", 0.17),
    ("Garden", "Home", "seasonal", 0.05),
)
# The seasonal pair is much stronger in spring (calendar months, 1 = January).
SEASONAL_AFFINITY = {("Garden", "Home"): ((3, 4, 5), 0.40)}
# A gift set bought together more often than its pairs imply: an order of 3+ lines whose first
# line is from one of the three takes its 2nd and 3rd lines from the other two with this chance.
AFFINITY_TRIPLE = (("Accessories", "Beauty", "Home"), 0.2)

# --- Campaigns -------------------------------------------------------------------------------
# Targeting uses only what the organisation knows at the start: signed up before it, consent to
# the channel with an address or number on file, not do-not-contact. A random target share of
# them is contacted, a random control share of those held out. Windows never overlap.
CAMPAIGN_WINDOW_DAYS = 30
CONTROL_SHARE = 0.20  # the usual hold-out; some campaigns hold out half
# campaign_id, name, channel, start date, offer, target share, control share, strength
CAMPAIGNS = (
    ("C01", "Spring refresh 2023", "email", date(2023, 4, 3), "15% off home and garden",
     0.9, 0.5, 1.0),
    ("C02", "Summer SMS flash", "sms", date(2023, 7, 3), "20% off one item", 0.9, 0.5, 1.1),
    ("C03", "Black Friday 2023", "email", date(2023, 11, 13), "25% off everything",
     0.9, 0.2, 1.3),
    ("C04", "New year win-back", "email", date(2024, 1, 15), "GBP 10 off GBP 50", 0.8, 0.5, 0.9),
    ("C05", "Spring garden 2024", "email", date(2024, 3, 11), "20% off garden", 0.7, 0.5, 0.8),
    ("C06", "Loyalty double points", "sms", date(2024, 5, 6), "double loyalty points",
     0.8, 0.2, 1.0),
    ("C07", "Summer sale 2024", "email", date(2024, 7, 1), "up to 30% off", 0.8, 0.2, 1.1),
    ("C08", "Autumn style", "email", date(2024, 9, 16), "free delivery", 0.7, 0.5, 0.7),
    ("C09", "Black Friday 2024", "email", date(2024, 11, 11), "25% off everything",
     0.9, 0.2, 1.3),
    ("C10", "New year SMS 2025", "sms", date(2025, 1, 13), "GBP 5 off", 0.8, 0.5, 0.9),
    ("C11", "Spring SMS 2025", "sms", date(2025, 3, 10), "15% off one item", 0.8, 0.2, 1.0),
    ("C12", "Summer sale 2025", "email", date(2025, 6, 23), "up to 40% off", 0.8, 0.2, 1.2),
    ("C13", "Reactivation SMS 2025", "sms", date(2025, 9, 8), "we miss you: 10% off",
     0.9, 0.5, 1.0),
    ("C14", "Black Friday 2025", "email", date(2025, 11, 10), "25% off everything",
     0.9, 0.2, 1.3),
)
# What kind of offer each campaign made (campaigns.csv offer_type): a store-wide discount or
# reward, a category offer, or the reactivation SMS to lapsed customers. The designed uplift does
# not depend on it except through the campaign's strength and C13's sleeping dogs.
OFFER_TYPES = ("discount", "category", "reactivation")
CAMPAIGN_OFFER_TYPES = {"C01": "category", "C05": "category", "C13": "reactivation"}  # others: discount
# Designed uplift in the chance of buying in the window, by segment (elite, loyal, regular,
# occasional), before the campaign's strength and the person's observable traits act on it.
# A regular customer's uplift, scaled by each segment's responsiveness.
CAMPAIGN_BASE_UPLIFT = 0.09
CAMPAIGN_SEGMENT_UPLIFT = np.round(CAMPAIGN_BASE_UPLIFT * SEGMENT_RESPONSIVENESS, 4)
# Observed recency at the start (days since the last purchase; never bought = beyond the last
# band): multiplier of the uplift. Recent buyers respond more.
RECENCY_BANDS = (90, 365)  # band edges in days: <= 90, <= 365, later or never
RECENCY_FACTOR = np.array([1.3, 1.0, 0.6])
# Channel preference: e-mail works on people who buy online, SMS on store shoppers.
# Multiplier = base + slope x web share (the person's chance of buying online).
# A call (no past campaign used it) is SMS's factor plus one: stronger than an SMS for every
# customer, most for store shoppers (2.5 for a pure store shopper, 1.5 for a pure web shopper),
# so a plan that borrows "SMS x 1.5" for calls under-states them and measuring corrects it.
CHANNEL_FACTOR = {"email": (0.5, 1.0), "sms": (1.5, -1.0), "call": (2.5, -1.0)}
MAX_UPLIFT = 0.3
# A campaign played forward from an exported plan (sample/playforward.py) has this strength.
PLAYFORWARD_STRENGTH = 1.0
# Sleeping dogs: lapsed customers (no purchase for SLEEPING_DOGS_DAYS, but some purchase before)
# reached by this SMS leave at the contact with this chance instead of being persuaded.
SLEEPING_DOGS_CAMPAIGN = "C13"
SLEEPING_DOGS_DAYS = 120
SLEEPING_DOGS_LEAVE_P = 0.8
CLICK_P = {"email": (0.10, 0.55), "sms": (0.05, 0.40)}  # (baseline, if an incremental purchase)


def build_products(rng: np.random.Generator) -> pd.DataFrame:
    """Catalogue of 8 categories x 3 tiers x 3-4 products with list price and unit cost."""
    rows = []
    for c, (category, base, _, nouns) in enumerate(CATEGORIES):
        for t, tier in enumerate(TIERS):
            n_products = 3 + int(rng.random() < 0.5)
            for k in range(n_products):
                noun = nouns[(k + t) % len(nouns)]
                price = base * TIER_PRICE_FACTOR[t] * rng.uniform(0.7, 1.4)
                list_pence = int(np.floor(price)) * 100 + 99
                cost_share = TIER_COST_SHARE[t] * rng.uniform(0.92, 1.08)
                rows.append({
                    "sku": f"{category[:3].upper()}-{tier[:3].upper()}{k + 1:02d}",
                    "product_name": f"{TIER_LABEL[t]} {noun}",
                    "category": category,
                    "tier": tier,
                    "list_pence": list_pence,
                    "cost_pence": int(round(list_pence * cost_share)),
                    "category_idx": c,
                    "tier_idx": t,
                })
    return pd.DataFrame(rows)


def category_names() -> list[str]:
    """Category names in catalogue order (their index is the category index everywhere)."""
    return [c[0] for c in CATEGORIES]


def category_popularity() -> np.ndarray:
    """Share of each category among lines drawn without an affinity: the first lines' mix over
    segments weighted by their share of orders (share x mean rate), so that a category's further
    lines are as common as its first lines and lifts measure affinities, not the segment mix."""
    orders = SEGMENT_SHARE * PURCHASE_RATE
    popularity = orders @ FIRST_CATEGORY_P
    return popularity / popularity.sum()


def affinity_strengths(month: int | None = None) -> np.ndarray:
    """Symmetric matrix of designed pair strengths in a calendar month (1-12; None: off season)."""
    names = category_names()
    strength = np.zeros((len(names), len(names)))
    for a, b, _, s in AFFINITY_PAIRS:
        months, in_season = SEASONAL_AFFINITY.get((a, b), ((), s))
        s = in_season if month in months else s
        strength[names.index(a), names.index(b)] = strength[names.index(b), names.index(a)] = s
    return strength


def affinity_matrix(month: int | None = None) -> np.ndarray:
    """Row-stochastic matrix: category of a further line given the first line's category.

    month: calendar month 1-12 (the seasonal pair is stronger in its season); None: off season.
    """
    strength = affinity_strengths(month)
    others = np.tile(category_popularity(), (len(strength), 1))
    np.fill_diagonal(others, 0.0)  # a further line is another category (a second T-shirt is qty)
    others /= others.sum(axis=1, keepdims=True)
    return strength + (1 - strength.sum(axis=1, keepdims=True)) * others


def affinity_triple() -> tuple[np.ndarray, float]:
    """Category indices of the designed three-item set and its strength."""
    names = category_names()
    members, strength = AFFINITY_TRIPLE
    return np.array([names.index(m) for m in members]), strength


def first_line_p() -> np.ndarray:
    """Category probabilities of an order's first line, by segment (segments x categories)."""
    return FIRST_CATEGORY_P


def line_count_p() -> np.ndarray:
    """Probabilities of 1-4 lines per order by segment: 1 + Binomial(3, EXTRA_LINE_PROB)."""
    p = EXTRA_LINE_PROB[:, None]
    j = np.arange(4)[None, :]
    return np.array([1, 3, 3, 1])[None, :] * p**j * (1 - p) ** (3 - j)


def _p_contains(wanted: tuple, first: int, forced: tuple, k: np.ndarray,
                row: np.ndarray) -> np.ndarray:
    """P(an order holds every category in `wanted`) given its first category, the categories
    forced into it, and k further lines drawn from `row` (inclusion-exclusion; k an array)."""
    rest = [x for x in wanted if x != first and x not in forced]
    total = np.zeros(len(k))
    for size in range(len(rest) + 1):
        for sub in combinations(rest, size):
            total += (-1) ** size * (1 - row[list(sub)].sum()) ** k
    return total


def basket_probability(wanted: tuple, first_p: np.ndarray, lines_p: np.ndarray,
                       matrix: np.ndarray) -> float:
    """Designed chance that an order holds all categories in `wanted`.

    first_p: first-line category probabilities; lines_p: P(1..4 lines); matrix: further-line
    categories by first category (affinity_matrix). Includes the three-item set.
    """
    triple, t = affinity_triple()
    n_lines = np.arange(1, 5)
    total = 0.0
    for f in np.flatnonzero(first_p):
        plain = _p_contains(wanted, f, (), n_lines - 1, matrix[f])
        if f in triple:
            forced = tuple(int(x) for x in triple if x != f)
            with_set = _p_contains(wanted, f, forced, np.maximum(n_lines - 3, 0), matrix[f])
            plain = np.where(n_lines >= 3, (1 - t) * plain + t * with_set, plain)
        total += first_p[f] * float(lines_p @ plain)
    return total


def designed_basket_shares(mix: np.ndarray, sets: list[tuple]) -> dict[tuple, float]:
    """Designed share of orders holding each set of categories, for an order mix.

    mix: orders by segment x calendar month (12); the result is the mix-weighted average of
    basket_probability, i.e. the expected share given who bought when, not an observed count.
    """
    weights = mix / max(mix.sum(), 1)
    first, lines = first_line_p(), line_count_p()
    # Months share a matrix unless a season tells them apart: compute each distinct one once.
    matrices = {}
    for m in range(12):
        matrix = affinity_matrix(m + 1)
        matrices.setdefault(matrix.tobytes(), (matrix, []))[1].append(m)
    out = dict.fromkeys(sets, 0.0)
    for matrix, months in matrices.values():
        for g in np.flatnonzero(weights[:, months].sum(axis=1)):
            weight = weights[g, months].sum()
            for s in sets:
                out[s] += weight * basket_probability(s, first[g], lines[g], matrix)
    return out


@dataclass(frozen=True)
class Campaign:
    """One e-mail or SMS campaign: targeting and control shares and its designed uplift."""

    campaign_id: str
    name: str
    channel: str
    start: date
    offer: str
    target_share: float
    uplift: np.ndarray  # designed uplift by segment index (strength x CAMPAIGN_SEGMENT_UPLIFT)
    control_share: float = CONTROL_SHARE
    strength: float = 1.0
    sleeping_dogs: bool = False
    offer_type: str = "discount"


def build_campaigns(rng: np.random.Generator | None = None) -> list[Campaign]:
    """The campaign calendar in time order (fully designed: the generator is not used)."""
    out = [Campaign(cid, name, channel, start, offer, target, strength * CAMPAIGN_SEGMENT_UPLIFT,
                    control, strength, cid == SLEEPING_DOGS_CAMPAIGN,
                    CAMPAIGN_OFFER_TYPES.get(cid, "discount"))
           for cid, name, channel, start, offer, target, control, strength in CAMPAIGNS]
    return sorted(out, key=lambda c: c.start)


def designed_uplift(c: Campaign, segment: np.ndarray, recency_days: np.ndarray,
                    web_share: np.ndarray) -> np.ndarray:
    """Designed rise in the chance of buying in the window if contacted, for people alive at
    the start: segment uplift x recency factor x channel factor, capped at MAX_UPLIFT.

    recency_days: days since the last purchase at the start (inf if never); web_share: the
    person's chance of buying online rather than in a store (1 - store preference).
    """
    band = np.searchsorted(np.array(RECENCY_BANDS), recency_days, side="left")
    base, slope = CHANNEL_FACTOR[c.channel]
    return np.clip(c.uplift[segment] * RECENCY_FACTOR[band] * (base + slope * web_share),
                   0.0, MAX_UPLIFT)


# --- Touch points ----------------------------------------------------------------------------
# A designed change at a touch point, for difference in differences: a new call-centre script in
# one region from a date raises the chance that a call is resolved at once by TOUCHPOINT_GAIN
# (for every reason), taking it from escalated and callback in proportion. Other regions keep
# OUTCOME_P. The outcome's own uniform draw is reused with the shifted table (no new draws).
TOUCHPOINT_NAME = "New call-centre script"
TOUCHPOINT_REGION = "North West"
TOUCHPOINT_START = date(2024, 7, 1)
TOUCHPOINT_GAIN = 0.12


def touchpoint_outcome_p() -> np.ndarray:
    """Call outcome probabilities (resolved, escalated, callback) under the new script, rows as
    OUTCOME_P: resolved + TOUCHPOINT_GAIN, the other two scaled down by the same total."""
    rest = 1.0 - OUTCOME_P[:, :1]
    shrink = (rest - TOUCHPOINT_GAIN) / rest
    return np.hstack([OUTCOME_P[:, :1] + TOUCHPOINT_GAIN, OUTCOME_P[:, 1:] * shrink])


def touchpoint_design() -> pd.DataFrame:
    """The designed touch-point change as truth/touchpoints.csv holds it (one row)."""
    return pd.DataFrame([{
        "touchpoint": TOUCHPOINT_NAME, "region": TOUCHPOINT_REGION,
        "start_date": TOUCHPOINT_START.isoformat(), "outcome": OUTCOMES[0],
        "designed_effect": TOUCHPOINT_GAIN,
        "description": "share of calls resolved at once rises by designed_effect in the region "
                       "from start_date"}])
