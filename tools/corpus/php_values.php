<?php
// PHP's ways of printing an instant (DateTime constants, date('r'), default
// formats); run by generate.sh with TZ=America/New_York.
date_default_timezone_set('America/New_York');
$constants = ['ATOM', 'COOKIE', 'ISO8601', 'RFC822', 'RFC850', 'RFC1036', 'RFC1123', 'RFC7231', 'RFC2822', 'RFC3339', 'RFC3339_EXTENDED', 'RSS', 'W3C'];
foreach (file($argv[1]) as $line) {
    $line = rtrim($line, "\n");
    if ($line === '' || $line[0] === '#') continue;
    [$label, $iso] = explode("\t", $line);
    $at = (new DateTime($iso))->setTimezone(new DateTimeZone('America/New_York'));
    foreach ($constants as $name) {
        // RFC 7231 dates are GMT: PHP prints the zone's wall time with "GMT" unless
        // the DateTime is in UTC (its documentation says to convert first).
        $shown = $name === 'RFC7231' ? (clone $at)->setTimezone(new DateTimeZone('UTC')) : $at;
        echo "php\ttimestamp\tDateTime::$name\t$label\t" . $shown->format(constant("DateTimeInterface::$name")) . "\n";
    }
    echo "php\ttimestamp\tdate('r')\t$label\t" . date('r', $at->getTimestamp()) . "\n";
    echo "php\ttimestamp\tdate('c')\t$label\t" . date('c', $at->getTimestamp()) . "\n";
    echo "php\ttimestamp\tdate('Y-m-d H:i:s')\t$label\t" . date('Y-m-d H:i:s', $at->getTimestamp()) . "\n";
    echo "php\ttimestamp\tdate('D, d M Y H:i:s')\t$label\t" . date('D, d M Y H:i:s', $at->getTimestamp()) . "\n";
    echo "php\ttimestamp\tdate('n/j/Y g:i A')\t$label\t" . date('n/j/Y g:i A', $at->getTimestamp()) . "\n";
    echo "php\ttimestamp\tjson_encode(DateTime)\t$label\t" . json_decode(json_encode($at))->date . "\n";
    echo "php\ttimestamp\ttime()\t$label\t" . $at->getTimestamp() . "\n";
}
