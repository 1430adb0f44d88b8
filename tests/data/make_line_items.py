"""How tests/data/line_items.csv was made (running this rewrites it identically, seed 22).

A line-item export as shops write them (UCI "Online Retail" layout), 347 lines: one row per invoice
line, CustomerID empty for guest checkouts (59 lines), cancellations as 'C' invoices with negative
quantities (20 lines), dates as 1/9/2023 11:03.
"""
import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

rng = random.Random(22)
products = [(f"{rng.randint(20000, 90000)}{rng.choice(['', 'A', 'B'])}", round(rng.uniform(0.42, 15.95), 2)) for _ in range(40)]
countries = ["United Kingdom"] * 6 + ["France", "Germany", "EIRE", "Spain"]
customers = [(str(12346 + i * 7), rng.choice(countries)) for i in range(45)]
start = datetime(2023, 1, 3, 8, 0)
rows, invoice = [], 536365
for _ in range(115):
    day = start + timedelta(days=rng.randint(0, 545), hours=rng.randint(0, 9), minutes=rng.randint(0, 59))
    guest = rng.random() < 0.22
    cid, country = ("", "United Kingdom") if guest else rng.choice(customers)
    lines = [(code, rng.randint(1, 12), price) for code, price in rng.sample(products, rng.randint(1, 5))]
    inv = str(invoice)
    invoice += 1
    for code, qty, price in lines:
        rows.append((day, inv, code, qty, price, cid, country))
    if rng.random() < 0.12:  # a cancellation of one line, days later
        code, qty, price = rng.choice(lines)
        later = day + timedelta(days=rng.randint(1, 20), hours=1)
        rows.append((later, "C" + str(invoice), code, -rng.randint(1, qty), price, cid, country))
        invoice += 1
rows.sort(key=lambda r: r[0])
with open(Path(__file__).with_name("line_items.csv"), "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["InvoiceNo", "StockCode", "Quantity", "UnitPrice", "CustomerID", "InvoiceDate", "Country"])
    for day, inv, code, qty, price, cid, country in rows:
        w.writerow([inv, code, qty, f"{price:.2f}", cid, f"{day.month}/{day.day}/{day.year} {day.hour}:{day.minute:02d}", country])

