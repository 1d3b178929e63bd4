"""Every region's example numbers (libphonenumber's metadata, through the
`phonenumbers` port) in each of libphonenumber's formats, plus fullwidth digits and
a `(0)` trunk prefix inside the international form. Run by generate.sh. Prints
`libphonenumber<TAB>phone<TAB>form<TAB>region<TAB>text<TAB>e164`."""
import phonenumbers
from phonenumbers import PhoneNumberFormat as F
from phonenumbers import PhoneNumberType as T

FULLWIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")

for region in sorted(phonenumbers.SUPPORTED_REGIONS):
    for kind in (T.FIXED_LINE, T.MOBILE, T.TOLL_FREE):
        number = phonenumbers.example_number_for_type(region, kind)
        if number is None:
            continue
        e164 = phonenumbers.format_number(number, F.E164)
        name = {T.FIXED_LINE: "fixed", T.MOBILE: "mobile", T.TOLL_FREE: "toll_free"}[kind]
        forms = {
            "E164": e164,
            "INTERNATIONAL": phonenumbers.format_number(number, F.INTERNATIONAL),
            "NATIONAL": phonenumbers.format_number(number, F.NATIONAL),
            "RFC3966": phonenumbers.format_number(number, F.RFC3966),
            "fullwidth INTERNATIONAL": phonenumbers.format_number(number, F.INTERNATIONAL).translate(FULLWIDTH),
        }
        national = phonenumbers.format_number(number, F.NATIONAL)
        if national.startswith("0"):
            # "+44 (0)20 7946 0958": the trunk zero kept in brackets, as UK and
            # German letterheads write it.
            code = number.country_code
            forms["INTERNATIONAL with (0)"] = f"+{code} (0){national[1:]}"
        for form, text in forms.items():
            print(f"libphonenumber\tphone\t{name}:{form}\t{region}\t{text}\t{e164}")
