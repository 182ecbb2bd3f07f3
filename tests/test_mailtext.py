"""Reply splitting for bottom-posted agent replies (quote first, answer below it)."""

from llmspec.runtime.sources._mailtext import split_reply


def test_bottom_posted_reply_keeps_the_answer_below_the_quote():
    text = ("On Thu, 1 Feb 2024 at 09:28, Sam Lee wrote:\n> Hi there,\n>\n> Is that email real?\n>\n> Sam\n\n"
            "Acme staff will never ask for your password.\n\n-- \nAcme Support\nhttps://acme.example/help\n")
    body, quoted, signature = split_reply(text)
    assert body == "Acme staff will never ask for your password."
    assert quoted.startswith("On Thu, 1 Feb 2024 at 09:28, Sam Lee wrote:") and "Is that email real?" in quoted
    assert signature == "Acme Support\nhttps://acme.example/help"


def test_top_posted_reply_still_drops_everything_after_the_header():
    text = "Thanks, that worked.\n\nOn Fri, 2 Feb 2024, Maya wrote:\n> Hold the reset button.\n"
    body, quoted, _ = split_reply(text)
    assert body == "Thanks, that worked."
    assert "Hold the reset button." in quoted


def test_outlook_original_message_block_is_all_quote():
    text = "Yes please.\n\n-----Original Message-----\nFrom: Ann\nSent: Monday\nSubject: x\n\nOld text here\n"
    body, quoted, _ = split_reply(text)
    assert body == "Yes please."
    assert "Old text here" in quoted
