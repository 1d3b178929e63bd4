"""Amounts as every CLDR locale writes them (Babel's CLDR data): the locale's
currency format (its own currency, and USD), its accounting format, and its decimal
format, for a few amounts, positive and negative. Run by generate.sh. Prints
`cldr<TAB>amount<TAB>form<TAB>expected<TAB>text<TAB>decimal_symbol<TAB>currency`."""
from decimal import ROUND_HALF_EVEN, Decimal

import babel
from babel import Locale, numbers

AMOUNTS = [Decimal("1234.5"), Decimal("-1234567.89"), Decimal("12.75"), Decimal("-0.5")]

rows = 0
for tag in sorted(babel.localedata.locale_identifiers()):
    if "_" in tag and tag.count("_") > 1:
        continue
    try:
        locale = Locale.parse(tag)
    except Exception:
        continue
    if locale.territory is None:
        continue  # the territory says which currency is the locale's own
    own = numbers.get_territory_currencies(locale.territory)
    currencies = ["USD"] + own[:1]
    symbol = numbers.get_decimal_symbol(locale)
    for amount in AMOUNTS:
        for currency in dict.fromkeys(currencies):
            for form, text in [
                ("currency", numbers.format_currency(amount, currency, locale=locale)),
                ("accounting", numbers.format_currency(amount, currency, locale=locale, format_type="accounting")),
                ("currency(name=code)", numbers.format_currency(amount, currency, locale=locale, format="¤¤ #,##0.00")),
            ]:
                # Babel rounds to the currency's digits (yen: none), half to even.
                digits = numbers.get_currency_precision(currency)
                shown = amount.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_EVEN)
                print(f"cldr\tamount\t{tag}:{form}\t{shown}\t{text}\t{symbol}\t{currency}")
                rows += 1
        print(f"cldr\tamount\t{tag}:decimal\t{amount}\t{numbers.format_decimal(amount, locale=locale)}\t{symbol}\t")
