"""Non-wake sentences for ``benchmarks/wake.py``'s false-wake hour: everyday speech a kiosk overhears.

Written for this benchmark (no outside corpus): conversation, questions, kiosk commands and assistant
answers, plus commands built from templates.  None contains a shipped wake phrase ("okay nabu", "alexa",
"hey jarvis", "hey mycroft").  :func:`pool` returns them de-duplicated in a fixed order; the benchmark gives
the even positions to the tuning split and the odd ones to the held-out split, so a decision rule tuned on one
split meets sentences it never saw on the other.
"""

from __future__ import annotations

import itertools

__all__ = ["pool"]

CHAT = (
    "Good morning, did you sleep well?", "I think it's going to rain later today.",
    "Can you pass me the salt, please?", "We should leave in about ten minutes.",
    "Where did I put my keys this time?", "The bus was late again this morning.",
    "Let's have pasta for dinner tonight.", "I'll call you back after the meeting.",
    "Have you seen my glasses anywhere?", "That movie was much better than I expected.",
    "My sister is coming over on Saturday.", "Don't forget to water the plants.",
    "The kids are still asleep upstairs.", "I need to buy a new pair of shoes.",
    "It's really cold in here, isn't it?", "Could you close the window, please?",
    "We're out of milk and bread again.", "The dog needs to go for a walk.",
    "I can't believe it's already December.", "Do you want tea or coffee?",
    "The neighbours are having a party tonight.", "I left my phone in the car.",
    "What did the doctor say yesterday?", "Let me know when you're ready to go.",
    "I'm going to take a shower now.", "This soup needs a little more pepper.",
    "He said he would be here by six.", "The train to the city leaves at half past eight.",
    "Maybe we can go to the beach next weekend.", "I've been working on this report all day.",
    "Please don't slam the door.", "She finally passed her driving test.",
    "The garden looks lovely in the spring.", "I'm not sure that's a good idea.",
    "We had a great time at the wedding.", "Who ate the last piece of cake?",
    "I'll pick up the children from school.", "The printer is out of paper again.",
    "Turn it down a little, it's too loud.", "Thanks, that was really helpful.",
    "Sorry, I didn't catch that.", "Hold on, someone is at the door.",
    "I'll be back in five minutes.", "Could you help me carry these bags?",
    "That's the best pizza I've ever had.", "The football match starts at three.",
    "I really like the colour of that wall.", "The meeting has been moved to Thursday.",
    "Let's not talk about work right now.", "My back hurts after all that gardening.",
    "We need to book the hotel for the holiday.", "Alex said he would bring the drinks.",
    "The election results come out tomorrow.", "Alexander is learning to play the violin.",
    "I read an article about electric cars.", "Just relax and let me handle it.",
    "Can you explain that one more time?", "The lexicon of this field is very technical.",
    "Next week we're visiting my grandparents.", "Put the leftovers in the fridge.",
    "The baby finally fell asleep.", "I have no idea what time it is.",
    "How was your day at work?", "It smells like something is burning.",
    "Did you remember to lock the back door?", "The washing machine is making a strange noise.",
    "I think the cat wants to go outside.", "We should paint the fence this summer.",
    "Let's watch a film after dinner.", "My flight lands at seven in the evening.",
    "Can we talk about this later?", "I'm starving, what's for lunch?",
    "The shop closes early on Sundays.", "He's been practising the piano for hours.",
    "Nobody told me the party was cancelled.", "I'd rather stay home tonight.",
    "That's exactly what I was thinking.", "Could you speak a bit more slowly?",
    "I'll text you the address.", "The roads are icy, drive carefully.",
)

QUESTIONS = (
    "What time is it in Tokyo right now?", "How many days until Christmas?",
    "Who won the game last night?", "What's the capital of Australia?",
    "How do you spell necessary?", "What's on my calendar for tomorrow?",
    "Is it going to snow this weekend?", "How long does it take to boil an egg?",
    "What's twenty five times four?", "When does the pharmacy open?",
    "How far is the airport from here?", "What's the traffic like on the motorway?",
    "Do I need an umbrella today?", "What's a good recipe for banana bread?",
    "How tall is Mount Everest?", "What does the word serendipity mean?",
    "Who wrote Pride and Prejudice?", "How many ounces are in a pound?",
    "What's the temperature outside?", "When is the next full moon?",
    "Where is the nearest petrol station?", "What's the news this morning?",
    "Can you tell me a joke?", "What's the exchange rate for the euro?",
    "How do I get to the train station?", "What song is this?",
    "How old is the Eiffel Tower?", "What should I cook tonight?",
    "Is the library open on Mondays?", "How much sugar goes in a cake?",
    "What time does the sun set today?", "How many calories are in an apple?",
    "Which planet is closest to the sun?", "What's the score in the cricket?",
    "How do you say thank you in Spanish?", "When is my next dentist appointment?",
)

ANSWERS = (
    "Sure, I've added eggs to your shopping list.", "It's currently twelve degrees and partly cloudy.",
    "Your next meeting is at two o'clock.", "I've turned off the lights in the living room.",
    "Here's a song you might like.", "The timer is done.",
    "I couldn't find anything on your calendar for today.", "It will be sunny with a high of twenty one.",
    "Okay, I'll remind you at six.", "Done. The thermostat is set to twenty degrees.",
    "There's light traffic on your usual route.", "Sorry, I don't know that one.",
    "The pharmacy opens at nine in the morning.", "Your package is out for delivery.",
    "I've paused the music.", "That will take about twenty minutes by car.",
    "Here is the latest news from the radio.", "Your alarm is set for seven tomorrow morning.",
    "Playing your morning playlist.", "The front door is locked.",
    "You have three new messages.", "The battery is at forty percent.",
    "I've added that to your to do list.", "Here's what I found on the web.",
    "The volume is now at five.", "Calling mum on speaker.",
)

DEVICES = ("lights", "lamp", "fan", "heater", "radio", "television", "air conditioner", "coffee machine",
           "porch light", "ceiling fan", "dishwasher", "kettle")
ROOMS = ("kitchen", "living room", "bedroom", "bathroom", "hallway", "garage", "office", "dining room",
         "basement", "nursery")
ITEMS = ("apples", "orange juice", "washing up liquid", "batteries", "toothpaste", "rice", "tomatoes",
         "cheese", "coffee beans", "bin bags", "olive oil", "yoghurt")
TASKS = ("call the plumber", "take my tablets", "feed the fish", "pay the electricity bill",
         "book a haircut", "pick up the dry cleaning", "send the birthday card", "check the oven")
WHENS = ("at six", "in an hour", "tomorrow morning", "on Friday", "this evening", "after lunch")
CITIES = ("London", "Paris", "Chicago", "Madrid", "Dublin", "Toronto", "Berlin", "Sydney", "Manchester", "Boston")
PLACES = ("the hospital", "my office", "the supermarket", "the cinema", "grandma's house", "the park",
          "the football ground", "the swimming pool")
ARTISTS = ("some jazz", "the radio", "classical music", "my workout playlist", "the news", "something relaxing",
           "the latest podcast", "rock music")


def _templated() -> list[str]:
    out = []
    for i, (dev, room) in enumerate(itertools.product(DEVICES, ROOMS)):
        form = i % 4
        if form == 0:
            out.append(f"Turn on the {dev} in the {room}.")
        elif form == 1:
            out.append(f"Switch off the {dev} in the {room}.")
        elif form == 2:
            out.append(f"Is the {dev} in the {room} still on?")
        else:
            out.append(f"Did anyone leave the {dev} on in the {room}?")
    for i, item in enumerate(ITEMS):
        out += [f"Add {item} to the shopping list.", f"Do we still have any {item}?"]
        out.append(f"Take {item} off the list." if i % 2 else f"I think we need more {item}.")
    out += [f"Remind me to {task} {when}." for task, when in itertools.product(TASKS, WHENS)]
    for i, (city, when) in enumerate(itertools.product(CITIES, WHENS[2:])):
        out.append(f"What's the weather like in {city} {when}?" if i % 2 else f"Will it rain in {city} {when}?")
    out += [f"How long will it take to get to {place}?" for place in PLACES]
    out += [f"Is there much traffic on the way to {place}?" for place in PLACES]
    out += [f"Set a timer for {n} minutes." for n in ("three", "five", "twelve", "twenty", "forty five")]
    out += [f"Play {a} in the {room}." for a, room in zip(ARTISTS, ROOMS)]
    out += [f"Wake me up at {h} thirty." for h in ("six", "seven", "eight")]
    return out


def pool(exclude: tuple[str, ...] = ()) -> list[str]:
    """All sentences but those in ``exclude``, de-duplicated, in a fixed order."""
    return [s for s in dict.fromkeys((*CHAT, *QUESTIONS, *ANSWERS, *_templated())) if s not in exclude]
