#!/usr/bin/env python3
"""Generate the synthetic Acme product documentation: docs/*.md, one record per heading section.

Stdlib only and deterministic (the text is fixed; nothing depends on the clock or on ordering of
sets), so the committed files can be checked against a fresh run. Usage:

    python examples/docs-assistant/generate_data.py [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent

# file name -> (title, intro, [(section heading, body)]). The facts agree with the support-bot
# example's canonical answers, so both examples describe the same company.
DOCS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "router.md": (
        "Acme Router",
        "The Acme Router is a dual-band Wi-Fi 6 router for homes and small offices.",
        [
            ("Setting up the router",
             "Connect the WAN port to your modem, power the router on and open the Acme Home app. "
             "The app finds the router and walks you through naming your network."),
            ("Status lights",
             "A solid white light means the router is online. A pulsing blue light means it is "
             "starting up. A red light means there is no internet connection."),
            ("Factory reset",
             "Hold the reset button for 10 seconds until the light blinks orange. The router "
             "restarts with factory settings and you set it up again in the app."),
            ("Updating the firmware",
             "The router installs firmware updates automatically between 2am and 4am. To update "
             "now, open the app and choose Settings, then Firmware, then Check now."),
            ("Guest network",
             "Turn on the guest network in the app under Wi-Fi, then Guest. Guests get internet "
             "access but cannot see your other devices."),
            ("Parental controls",
             "Create a profile for each child in the app and assign their devices to it. You can "
             "pause the internet for a profile or set a bedtime."),
        ],
    ),
    "smart-plug.md": (
        "Acme Smart Plug",
        "The Acme Smart Plug switches any lamp or appliance up to 13 amps from your phone.",
        [
            ("Pairing the plug",
             "Press the plug button three times to start pairing mode. The light blinks blue, and "
             "the plug appears in the Acme Home app within a minute."),
            ("Schedules",
             "Open the plug in the app and tap Schedule to switch it on and off at set times. "
             "Schedules keep running even when your phone is offline."),
            ("Energy monitoring",
             "The app shows how many kilowatt-hours the plug has used today, this week and this "
             "month. Set your tariff in Settings to see the cost."),
            ("Away mode",
             "Away mode switches the plug on and off at random times in the evening, so your home "
             "looks lived in while you travel."),
            ("Light colours",
             "Blue blinking means pairing mode, solid green means the plug is on, and red means it "
             "has lost its Wi-Fi connection."),
            ("Safety",
             "Do not use the plug outdoors or with heaters above 3000 watts. The plug switches off "
             "by itself if it gets too hot."),
        ],
    ),
    "cloud-backup.md": (
        "Acme Cloud Backup",
        "Acme Cloud Backup keeps an encrypted copy of the folders you choose on Acme's servers.",
        [
            ("Installing the app",
             "Download the Cloud Backup app for Windows, macOS or Linux from acme.example, sign in "
             "and choose the folders to protect."),
            ("Restoring files",
             "Open the Versions tab in the Cloud Backup app to restore an earlier copy. Pick the "
             "date you want and choose Restore."),
            ("How long versions are kept",
             "Every change to a file is kept as a version for one year. Deleted files stay in the "
             "Versions tab for the same year."),
            ("Command line",
             "The app also installs the `acme-backup` command for servers:\n\n"
             "```sh\n"
             "# list the snapshots of one folder\n"
             "acme-backup versions ~/Documents\n"
             "# restore a folder as it was on a date\n"
             "acme-backup restore ~/Documents --date 2024-05-01\n"
             "```"),
            ("Storage plans",
             "The Basic plan stores 200 GB and the Family plan stores 2 TB for up to five people. "
             "You can change plans at any time in your account."),
            ("Encryption",
             "Files are encrypted on your computer before upload. If you set a private key, Acme "
             "cannot read your files and cannot recover the key for you."),
        ],
    ),
    "account-and-billing.md": (
        "Account and billing",
        "Your Acme account holds your devices, your Cloud Backup plan and your orders.",
        [
            ("Returns and refunds",
             "You can return any Acme product within 30 days of delivery for a full refund. Start "
             "a return from the order in your account."),
            ("Warranty",
             "Every Acme device has a 2-year warranty covering hardware faults. Keep your order "
             "number, because we ask for it when you make a claim."),
            ("Keeping your account safe",
             "Acme staff will never ask for your password, so please do not share it. Turn on "
             "two-step sign-in under Security."),
            ("Invoices",
             "Invoices for every order and every Cloud Backup payment are in your account under "
             "Billing, as PDF files."),
            ("Changing your plan",
             "Upgrades take effect at once and are charged pro rata. Downgrades take effect at the "
             "start of the next billing period."),
        ],
    ),
    "troubleshooting.md": (
        "Troubleshooting",
        "Start here when something does not work. Most problems are solved in a few minutes.",
        [
            ("The internet is slow",
             "Move the router off the floor and away from metal. Restart it from the app, and run "
             "the speed test under Diagnostics to compare with your plan."),
            ("The plug goes offline",
             "Check that your Wi-Fi uses the 2.4 GHz band, because the plug does not support 5 GHz. "
             "Move the router or the plug closer together."),
            ("A backup is stuck",
             "Pause and resume the backup from the app. If it stays stuck, check that the disk is "
             "not full and that the folder still exists."),
            ("Contacting support",
             "Write to support@acme.example or use the chat in the app. Have your order number "
             "ready, and never include your password."),
            ("Known issues",
             "TODO: write this section."),
            ("Release notes",
             ""),
        ],
    ),
}


def render(title: str, intro: str, sections: list[tuple[str, str]]) -> str:
    parts = [f"# {title}\n\n{intro}\n"]
    for heading, body in sections:
        parts.append(f"## {heading}\n\n{body}\n" if body else f"## {heading}\n")
    return "\n".join(parts)


def generate() -> dict[str, bytes]:
    return {name: render(*spec).encode() for name, spec in DOCS.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "docs", help="output folder (default: ./docs)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in generate().items():
        (args.out / name).write_bytes(data)
        print(f"wrote {args.out / name} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
