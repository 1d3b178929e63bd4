# Perl's ways of printing an instant (localtime, gmtime, POSIX strftime); run by
# generate.sh with TZ=America/New_York.
use strict;
use warnings;
use POSIX qw(strftime);
use Time::Local qw(timegm);

sub out { print join("\t", "perl", @_), "\n"; }

open(my $fh, "<", $ARGV[0]) or die $!;
while (my $line = <$fh>) {
    chomp $line;
    next if $line =~ /^#/ || $line !~ /\S/;
    my ($label, $iso) = split /\t/, $line;
    my ($y, $mo, $d, $h, $mi, $s, $sign, $oh, $om) =
        $iso =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)([+-])(\d+):(\d+)$/ or die $iso;
    my $epoch = timegm($s, $mi, $h, $d, $mo - 1, $y) - ($sign eq "-" ? -1 : 1) * ($oh * 3600 + $om * 60);
    my @local = localtime($epoch);
    my @utc = gmtime($epoch);
    out("timestamp", "scalar localtime", $label, scalar localtime($epoch));
    out("timestamp", "scalar gmtime", $label, scalar gmtime($epoch));
    out("timestamp", "strftime(%c)", $label, strftime("%c", @local));
    out("timestamp", "strftime(%Y-%m-%d %H:%M:%S)", $label, strftime("%Y-%m-%d %H:%M:%S", @local));
    out("timestamp", "strftime(%Y-%m-%dT%H:%M:%S%z)", $label, strftime("%Y-%m-%dT%H:%M:%S%z", @local));
    out("timestamp", "strftime(%a, %d %b %Y %H:%M:%S %z)", $label, strftime("%a, %d %b %Y %H:%M:%S %z", @local));
    out("timestamp", "strftime(%a %b %e %H:%M:%S %Z %Y)", $label, strftime("%a %b %e %H:%M:%S %Z %Y", @local));
    out("timestamp", "strftime(%D %r)", $label, strftime("%D %r", @local));
    out("timestamp", "strftime(%F %T UTC)", $label, strftime("%F %T UTC", @utc));
    out("timestamp", "time", $label, $epoch);
}
