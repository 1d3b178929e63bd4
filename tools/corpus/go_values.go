// Go's ways of printing an instant and a duration (time.Time.String, the layout
// constants, time.Duration.String); run by generate.sh with TZ=America/New_York.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"
)

func out(category, form, label, text string) {
	fmt.Printf("go\t%s\t%s\t%s\t%s\n", category, form, label, text)
}

func main() {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic(err)
	}
	layouts := []struct{ name, layout string }{
		{"ANSIC", time.ANSIC}, {"UnixDate", time.UnixDate}, {"RubyDate", time.RubyDate},
		{"RFC822", time.RFC822}, {"RFC822Z", time.RFC822Z}, {"RFC850", time.RFC850},
		{"RFC1123", time.RFC1123}, {"RFC1123Z", time.RFC1123Z}, {"RFC3339", time.RFC3339},
		{"RFC3339Nano", time.RFC3339Nano}, {"Kitchen", time.Kitchen}, {"Stamp", time.Stamp},
		{"DateTime", "2006-01-02 15:04:05"}, {"DateOnly", "2006-01-02"},
	}
	file, err := os.Open(os.Args[1])
	if err != nil {
		panic(err)
	}
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "\t")
		at, err := time.Parse(time.RFC3339, parts[1])
		if err != nil {
			panic(err)
		}
		at = at.In(ny)
		label := parts[0]
		out("timestamp", "Time.String", label, at.String())
		out("timestamp", "Time.UTC().String", label, at.UTC().String())
		for _, l := range layouts {
			out("timestamp", "Format("+l.name+")", label, at.Format(l.layout))
			out("timestamp", "UTC().Format("+l.name+")", label, at.UTC().Format(l.layout))
		}
		b, _ := at.MarshalJSON()
		out("timestamp", "MarshalJSON", label, strings.Trim(string(b), `"`))
		out("timestamp", "Unix", label, fmt.Sprint(at.Unix()))
		out("timestamp", "UnixMilli", label, fmt.Sprint(at.UnixMilli()))
	}
	for _, s := range []float64{0, 1.5, 5, 30, 59, 60, 61, 125, 125.5, 599.25, 3599, 3600, 3661, 7322, 86399, 90061} {
		d := time.Duration(s * float64(time.Second))
		label := fmt.Sprint(s)
		out("duration", "Duration.String", label, d.String())
		out("duration", "Duration.Seconds", label, fmt.Sprint(d.Seconds()))
	}
}
