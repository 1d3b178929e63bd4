// Node's (V8 and ICU's) ways of printing an instant; run by generate.sh with
// TZ=America/New_York. Prints `runtime<TAB>category<TAB>form<TAB>label<TAB>text`.
const fs = require("fs");
const lines = fs.readFileSync(process.argv[2], "utf8").split("\n");
const out = (form, label, text) => console.log(["node", "timestamp", form, label, text].join("\t"));
const locales = ["en-US", "en-GB", "en-CA", "en-AU", "en-IN", "de-DE", "fr-FR", "es-MX", "pt-BR", "ja-JP", "sv-SE", "nl-NL"];
const styles = ["full", "long", "medium", "short"];
for (const line of lines) {
  if (!line.trim() || line.startsWith("#")) continue;
  const [label, iso] = line.split("\t");
  const at = new Date(iso);
  out("toString", label, at.toString());
  out("toUTCString", label, at.toUTCString());
  out("toISOString", label, at.toISOString());
  out("JSON.stringify", label, JSON.parse(JSON.stringify(at)));
  out("toLocaleString()", label, at.toLocaleString());
  out("getTime", label, String(at.getTime()));
  for (const locale of locales) {
    out(`toLocaleString(${locale})`, label, at.toLocaleString(locale));
    for (const dateStyle of styles) {
      for (const timeStyle of ["medium", "short"]) {
        const text = new Intl.DateTimeFormat(locale, { dateStyle, timeStyle, timeZone: "America/New_York" }).format(at);
        out(`Intl(${locale},${dateStyle}/${timeStyle})`, label, text);
      }
    }
  }
}
