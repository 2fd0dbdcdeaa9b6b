"""The text of the quickstart corpus, written for this project (no third-party text).

Articles are ordinary, well-formed English prose so curation keeps them; the other pages exist
to be caught: spam, boilerplate-only pages, pages in other languages, near-duplicate
syndications, personal data, and one page that quotes an item of the quickstart's benchmark.
"""

ARTICLES = {
    "sourdough": ("How to keep a sourdough starter alive", """
A sourdough starter is a small colony of wild yeast and lactic acid bacteria living in flour and water. Keeping it healthy is less about precise rules than about rhythm. Every feeding gives the microbes fresh starch to eat, and every hour at room temperature lets them multiply and produce the gases and acids that make bread rise and taste tangy.

Most bakers feed their starter once a day when it lives on the counter. Discard most of it, keep a spoonful, and add equal weights of flour and water. The mixture should double within six to eight hours. If it rises and falls much faster, the kitchen is warm and the starter is hungry, so feed it more often or use a little less of the old culture.

A starter that smells of nail polish remover is not ruined. That sharp smell means the yeast has run out of food and is producing acetone-like compounds. Two or three regular feedings usually bring back the mild, yoghurt-like aroma. A layer of grey liquid on top is harmless as well; pour it off or stir it back in for a more sour loaf.

If you bake only on weekends, keep the starter in the refrigerator. Cold slows the microbes down so much that a weekly feeding is enough. Take it out the evening before you bake, feed it twice, and wait until it is bubbly and domed before you mix your dough.

Real problems are rare. Pink or orange streaks, or fuzzy mould, mean that unwanted organisms have taken over, and it is safer to start again. Otherwise, a neglected starter is almost always recoverable with patience and flour.
"""),
    "bicycles": ("Why a moving bicycle does not fall over", """
A bicycle standing still topples at the slightest push, yet the same bicycle rolling at a brisk pace seems to balance itself. For more than a century people have argued about why. The popular answer is the gyroscopic effect of the spinning wheels, but experiments tell a more interesting story.

When a bicycle starts to lean to one side, the front wheel turns toward that side. This steering response moves the contact point of the tyre back under the centre of mass, which catches the fall. Two design features make the front wheel turn in the right direction. The first is trail: the point where the tyre touches the road lies behind the line of the steering axis, so the ground pushes the wheel into the lean. The second is the distribution of mass in the front fork and handlebars, which makes the front assembly swing into a lean before the frame falls further.

Researchers have built bicycles with counter-rotating wheels that cancel the gyroscopic effect, and bicycles with negative trail. Some of these odd machines still balance themselves within a range of speeds, which shows that no single effect is essential. Stability comes from how the parts interact.

For riders, the lesson is practical. Balance is mostly steering. A beginner who wobbles is usually gripping the handlebars too tightly and fighting the small corrections the bicycle would make on its own. Looking ahead, relaxing the arms and keeping a steady speed let the geometry of the machine do much of the work.
"""),
    "compost": ("Composting at home without the smell", """
Home compost turns kitchen scraps and garden waste into a dark, crumbly material that improves soil. A good heap does not smell bad. When it does, the cause is nearly always a lack of air or too much wet, nitrogen-rich material.

Think of compost ingredients as greens and browns. Greens are fresh, moist materials such as vegetable peelings, coffee grounds and grass clippings. Browns are dry, carbon-rich materials such as fallen leaves, shredded cardboard and straw. A heap with roughly two or three parts browns to one part greens, by volume, stays airy and breaks down steadily.

Moisture matters as much as the mix. The inside of the heap should feel like a wrung-out sponge. If it is soggy, add browns and turn it. If it is dry and nothing seems to happen, sprinkle it with water while you turn it.

Turning the heap every week or two brings oxygen to the microbes that do the work. An active heap warms up noticeably in the middle, sometimes to more than fifty degrees Celsius, which also kills many weed seeds.

Some things are better left out. Meat, fish and dairy attract animals and can smell as they rot. Diseased plants and perennial weeds with roots can survive a cool heap. Cooked food in small amounts is usually fine in a hot heap.

After a few months the material at the bottom will be dark and earthy. Sieve out the pieces that have not broken down, return them to the heap, and spread the finished compost on your beds in spring.
"""),
    "printing": ("The printing press and the spread of ideas", """
Before the middle of the fifteenth century, books in Europe were copied by hand. A single Bible could occupy a scribe for many months, so books were rare and expensive. The printing press with movable metal type changed that within a few decades.

The key invention was not the press itself, which borrowed from wine and olive presses, but a system for casting many identical letters quickly. A hand mould allowed a worker to produce type pieces of uniform height, which could be arranged into lines, inked, printed and then reused for the next page. An oil-based ink that stuck to metal, and paper that was becoming cheaper, completed the system.

Printing spread remarkably fast. By the end of the century there were presses in more than two hundred European towns, and millions of books had been produced. Prices fell, and pamphlets, calendars and grammars reached readers who had never owned a book.

The consequences went far beyond cheaper books. Identical copies meant that scholars in different cities could refer to the same page and the same figures, which helped errors to be found and corrected. Vernacular languages gained standard spellings. Religious and political arguments travelled quickly, sometimes faster than authorities could respond.

Historians still debate how much of later change should be credited to printing alone. Literacy, trade and universities were growing at the same time. Still, few technologies have so clearly altered how knowledge is stored, checked and shared.
"""),
    "interest": ("Compound interest explained with simple numbers", """
Compound interest means that interest is paid not only on the money you put in but also on the interest that has already been added. Over short periods the difference from simple interest is small. Over decades it becomes the main part of the total.

Suppose you deposit one thousand dollars at five percent a year. With simple interest you earn fifty dollars every year, so after twenty years you have two thousand dollars. With annual compounding, the first year also brings fifty dollars, but the second year pays five percent on one thousand and fifty, which is fifty-two dollars and fifty cents. After twenty years the balance is about two thousand six hundred and fifty dollars.

A handy rule of thumb is the rule of seventy-two. Divide seventy-two by the yearly interest rate in percent to estimate how many years it takes for money to double. At six percent, money doubles in about twelve years; at nine percent, in about eight.

The same arithmetic works against borrowers. Credit card balances often carry interest rates above twenty percent, compounded monthly. An unpaid balance can double in less than four years, which is why paying more than the minimum makes such a difference.

Two lessons follow. Time is the most powerful ingredient, so starting early matters more than starting big. And the rate matters enormously, so small differences in fees or interest rates add up to large sums over a lifetime.
"""),
    "houseplants": ("Caring for houseplants through the winter", """
Many houseplants struggle in winter even though the temperature indoors hardly changes. The real difference is light. Days are shorter, the sun is lower, and a window that was bright in July may give a plant only a fraction of the light in January.

Because plants grow more slowly in dim light, they also use less water. Overwatering is the most common winter mistake. Before watering, push a finger into the soil; if the top few centimetres are still damp, wait. Pots without drainage holes are especially risky, because water collects at the bottom and roots begin to rot.

Dry air from heating is the second problem. Tropical plants with thin leaves may develop brown edges. Grouping plants together, placing them on a tray of damp pebbles, or moving them away from radiators helps more than misting, which raises humidity only for a few minutes.

Move plants closer to the brightest windows, but keep leaves from touching cold glass. Clean dusty leaves with a damp cloth so they can use what light there is. If you have a south-facing window, this is the season to use it.

Stop fertilising until spring. A plant that is barely growing cannot use the extra nutrients, and salts build up in the soil. When new leaves appear in March or April, resume feeding at half strength and repot plants that have outgrown their containers.
"""),
    "vaccines": ("How vaccines teach the immune system", """
The immune system learns from experience. The first time it meets a new virus or bacterium, it needs days to find the right tools to fight it, and during that time a person can become seriously ill. A vaccine gives the immune system that experience in advance, without the danger of the disease itself.

Vaccines contain or produce a harmless piece or version of a germ, often a single protein from its surface. Immune cells recognise this protein as foreign. Some of them make antibodies that can stick to it, and others learn to destroy infected cells. Crucially, a few of these cells become long-lived memory cells.

If the real germ arrives later, memory cells recognise it and multiply quickly. The response that took a week the first time now starts within hours, often before the infection can cause symptoms.

Some vaccines need several doses because each encounter strengthens and refines the memory. Others need boosters after some years, either because memory fades or because the germ changes its surface proteins, as influenza viruses do every season.

Side effects such as a sore arm, tiredness or a mild fever are signs that the immune system is responding. Serious reactions are rare and are monitored closely. When enough people in a community are immune, a germ struggles to spread, which also protects those who cannot be vaccinated.
"""),
    "tides": ("What causes the tides", """
Twice a day, on most coasts, the sea rises and falls. The main cause is the gravity of the Moon, with a smaller contribution from the Sun.

The Moon pulls on the whole Earth, but it pulls more strongly on the side facing it than on the far side, because gravity weakens with distance. This difference stretches the oceans into two bulges, one toward the Moon and one on the opposite side. As the Earth turns, a given coast passes through both bulges, which is why there are usually two high tides and two low tides each day.

The Moon also moves along its orbit, so it returns to the same position in the sky about fifty minutes later each day. High tide therefore comes about fifty minutes later every day as well.

When the Sun, Moon and Earth line up, at new moon and full moon, their effects add together and produce larger spring tides. When the Sun and Moon are at right angles, at the quarter moons, they partly cancel and produce smaller neap tides.

Local geography makes a great difference. In some funnel-shaped bays the tidal range reaches more than ten metres, while parts of the Mediterranean see only a few centimetres. The shape of the coastline and the depth of the water can amplify or dampen the tide that the Moon creates.
"""),
}

SYNDICATED = {  # near-duplicate copies on other sites: small edits to an article
    "bicycles": ("cycling-weekly.example", [("century", "hundred years"), ("brisk pace", "steady pace")]),
    "compost": ("green-living.example", [("every week or two", "every couple of weeks")]),
    "interest": ("money-basics.example", [("one thousand dollars", "1,000 dollars")]),
}

SPAM = {
    "cheap-pills": ("BEST CHEAP PILLS ONLINE", "\n".join(
        ["buy cheap pills online best price pills discount pills cheap cheap cheap"] * 12
        + ["click here click here click here"] * 6)),
    "seo-links": ("Top links", "\n".join(f"- best {w} deals" for w in
                                         ["phone", "laptop", "shoes", "watch", "tv", "camera", "bag", "sofa"] * 4)),
    "lorem": ("Placeholder", "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 30),
    "tiny": ("Home", "Welcome. More soon."),
}

OTHER_LANGUAGES = {
    "de-brot": ("de", "Brot backen am Wochenende", """
Wer am Wochenende Brot backen möchte, sollte schon am Freitagabend anfangen. Der Teig braucht Zeit, damit sich Geschmack und Struktur entwickeln. Mehl, Wasser, Salz und ein wenig Hefe werden zu einem weichen Teig verknetet, der über Nacht im Kühlschrank ruht.

Am Samstagmorgen wird der Teig vorsichtig geformt und noch einmal gehen gelassen. Ein gut vorgeheizter Ofen und etwas Dampf in den ersten Minuten sorgen für eine knusprige Kruste. Nach dem Backen sollte das Brot vollständig auskühlen, bevor man es anschneidet, denn die Krume gart noch nach.
"""),
    "fr-velo": ("fr", "Le vélo en ville", """
Se déplacer à vélo en ville demande un peu d'organisation, mais les avantages sont nombreux. On évite les embouteillages, on fait de l'exercice sans y penser et l'on découvre des quartiers que l'on ne voit jamais en voiture.

Pour rouler en sécurité, il faut être visible : des lumières à l'avant et à l'arrière, des vêtements clairs le soir et une position bien lisible sur la chaussée. Un bon antivol et un entretien régulier des freins et des pneus complètent l'équipement du cycliste urbain.
"""),
}

PII_PAGE = ("Contact the community garden", """
The community garden on Elm Street is open to everyone who wants to grow vegetables, herbs or flowers. Plots are assigned each spring, and members share tools, water and a compost area. Volunteers run a seed swap in March and a harvest festival in September.

If you would like a plot, write to our coordinator at garden.coordinator@elmstreet-garden.example or call 555-0142 between nine and five on weekdays. Please tell us how much space you need and whether you have gardened before. Our server at 192.0.2.77 hosts the booking calendar for tool loans.

New members receive a short introduction to the rules of the garden: no chemical pesticides, paths kept clear, and plots tended at least once a week during the growing season.
""")

# Our own benchmark: a handful of short word problems in the style of maths test sets, written for the
# quickstart so that decontamination has something to find without shipping anyone's benchmark.
BENCHMARK = [
    {"question": "A baker makes 24 rolls in the morning and 18 rolls in the afternoon. She sells all but 7 of them. How many rolls does she sell?", "answer": "35"},
    {"question": "A cyclist rides 12 kilometres to work and the same distance back home, five days a week. How many kilometres does she ride in a week?", "answer": "120"},
    {"question": "A garden bed is 3 metres long and 2 metres wide. Each square metre needs 4 bags of compost. How many bags are needed for the whole bed?", "answer": "24"},
    {"question": "Tom saves 15 dollars every week for 8 weeks and then spends 45 dollars on a book set. How many dollars does he have left?", "answer": "75"},
    {"question": "A printer prints 40 pages per minute. How many minutes does it take to print 6 copies of a 100 page report?", "answer": "15"},
    {"question": "A plant grows 2 centimetres every week during winter and 5 centimetres every week during summer. How much does it grow in 4 winter weeks and 6 summer weeks?", "answer": "38"},
]

PLANTED = ("Weekly maths practice", """
Here is this week's practice problem for our study group. Try it on your own before you look at the discussion below.

A cyclist rides 12 kilometres to work and the same distance back home, five days a week. How many kilometres does she ride in a week?

Several members solved it by first working out the daily distance and then multiplying by the number of working days. Others drew a small table with one row per day. Both approaches give the same result, and explaining why is a good exercise in itself.
""")
