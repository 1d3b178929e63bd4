// Java's ways of printing an instant and a duration; run by generate.sh with
// TZ=America/New_York. Prints `runtime<TAB>category<TAB>form<TAB>label<TAB>text`.
import java.nio.file.*;
import java.time.*;
import java.time.format.*;
import java.util.*;

public class JavaValues {
    static void out(String category, String form, String label, String text) {
        System.out.println("java\t" + category + "\t" + form + "\t" + label + "\t" + text);
    }

    public static void main(String[] args) throws Exception {
        ZoneId ny = ZoneId.of("America/New_York");
        Locale[] locales = {Locale.US, Locale.UK, Locale.CANADA, Locale.GERMANY, Locale.FRANCE, Locale.JAPAN, new Locale("es", "MX")};
        FormatStyle[] styles = {FormatStyle.SHORT, FormatStyle.MEDIUM, FormatStyle.LONG, FormatStyle.FULL};
        for (String line : Files.readAllLines(Paths.get(args[0]))) {
            if (line.isBlank() || line.startsWith("#")) continue;
            String[] parts = line.split("\t");
            String label = parts[0];
            ZonedDateTime at = OffsetDateTime.parse(parts[1]).atZoneSameInstant(ny);
            Instant instant = at.toInstant();
            out("timestamp", "Date.toString", label, Date.from(instant).toString());
            out("timestamp", "ZonedDateTime.toString", label, at.toString());
            out("timestamp", "OffsetDateTime.toString", label, at.toOffsetDateTime().toString());
            out("timestamp", "LocalDateTime.toString", label, at.toLocalDateTime().toString());
            out("timestamp", "Instant.toString", label, instant.toString());
            out("timestamp", "Timestamp.toString", label, java.sql.Timestamp.from(instant).toString());
            out("timestamp", "ISO_LOCAL_DATE_TIME", label, DateTimeFormatter.ISO_LOCAL_DATE_TIME.format(at));
            out("timestamp", "ISO_OFFSET_DATE_TIME", label, DateTimeFormatter.ISO_OFFSET_DATE_TIME.format(at));
            out("timestamp", "ISO_ZONED_DATE_TIME", label, DateTimeFormatter.ISO_ZONED_DATE_TIME.format(at));
            out("timestamp", "ISO_DATE_TIME", label, DateTimeFormatter.ISO_DATE_TIME.format(at));
            out("timestamp", "ISO_INSTANT", label, DateTimeFormatter.ISO_INSTANT.format(at));
            out("timestamp", "RFC_1123_DATE_TIME", label, DateTimeFormatter.RFC_1123_DATE_TIME.format(at));
            out("timestamp", "BASIC_ISO_DATE", label, DateTimeFormatter.BASIC_ISO_DATE.format(at));
            out("timestamp", "ISO_LOCAL_DATE", label, DateTimeFormatter.ISO_LOCAL_DATE.format(at));
            out("timestamp", "SimpleDateFormat()", label, new java.text.SimpleDateFormat().format(Date.from(instant)));
            out("timestamp", "DateFormat.getDateTimeInstance()", label, java.text.DateFormat.getDateTimeInstance().format(Date.from(instant)));
            for (Locale locale : locales) {
                for (FormatStyle date : styles) {
                    for (FormatStyle time : new FormatStyle[] {FormatStyle.SHORT, FormatStyle.MEDIUM}) {
                        String text = DateTimeFormatter.ofLocalizedDateTime(date, time).withLocale(locale).format(at);
                        out("timestamp", "ofLocalizedDateTime(" + date + "," + time + "," + locale.toLanguageTag() + ")", label, text);
                    }
                }
            }
        }
        double[] seconds = {0, 1.5, 5, 30, 59, 60, 61, 125, 125.5, 599.25, 3599, 3600, 3661, 7322, 86399, 90061};
        for (double s : seconds) {
            Duration d = Duration.ofMillis(Math.round(s * 1000));
            String label = (s == Math.floor(s)) ? String.valueOf((long) s) : String.valueOf(s);
            out("duration", "Duration.toString", label, d.toString());
        }
    }
}
