#!/usr/bin/env bash
# perl under poolmalloc: a script heavy in hashes, strings, arrays, sorting,
# regular expressions, references and closures; stdout and exit status must
# equal those of a run without poolmalloc.
# shellcheck source=tests/preload/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pm_require perl
pm_setup

cat >"$PM_TMP/work.pl" <<'PERL'
use strict;
use warnings;

my $seed = 12345;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed >> 8; }
sub word { my $n = 1 + rnd() % 10; join '', map { chr(97 + rnd() % 26) } 1 .. $n }

# Hashes of words and of arrays.
my (%count, %by_prefix);
my @words = map { word() } 1 .. 150_000;
for my $w (@words) {
  $count{$w}++;
  push @{ $by_prefix{ substr($w, 0, 2) } }, $w;
}
printf "words %d distinct %d prefixes %d\n", scalar @words, scalar keys %count, scalar keys %by_prefix;
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 9];
print "top @top\n";
my $long = 0;
for my $p (sort keys %by_prefix) { $long++ if @{ $by_prefix{$p} } > 200 }
print "long prefixes $long\n";

# Deleting half the keys, re-inserting others.
my $i = 0;
for my $k (sort keys %count) { delete $count{$k} if $i++ % 2 }
$count{"x$_"} = $_ for 1 .. 50_000;
printf "after delete %d\n", scalar keys %count;

# Strings: concatenation, substitution, split/join, sprintf, reverse.
my $text = join ' ', @words[0 .. 49_999];
(my $v = $text) =~ s/[aeiou]+/<$&>/g;
my @parts = split /\s+/, $v;
my $joined = join '|', map { scalar reverse $_ } @parts[0 .. 999];
printf "text %d subst %d parts %d joined %d\n", length $text, length $v, scalar @parts, length $joined;
my @m = ($text =~ /\b(\w)(\w*)\1\b/g);
printf "regex pairs %d first %s\n", scalar(@m) / 2, join(',', @m[0 .. 5]);
my %tr; $tr{$_}++ for ($text =~ /(\w\w)/g);
my @bigrams = (sort { $tr{$b} <=> $tr{$a} || $a cmp $b } keys %tr)[0 .. 4];
print "bigrams @bigrams\n";

# Records (hash references), sorting with a Schwartzian transform.
my @recs = map { { id => $_, name => word(), score => rnd() % 1000, tags => [ map { word() } 1 .. rnd() % 4 ] } } 1 .. 60_000;
my @sorted = map { $_->[1] } sort { $a->[0] <=> $b->[0] || $a->[1]{id} <=> $b->[1]{id} } map { [ $_->{score}, $_ ] } @recs;
printf "sorted first %d/%d last %d/%d tags %d\n", $sorted[0]{id}, $sorted[0]{score},
  $sorted[-1]{id}, $sorted[-1]{score}, eval { my $t = 0; $t += @{ $_->{tags} } for @recs; $t };

# Closures and nested structures freed and rebuilt.
my @subs;
for my $k (1 .. 20_000) { my $x = $k * 3; push @subs, sub { $x + $_[0] } }
my $s = 0; $s += $_->(1) for @subs;
print "closures $s\n";
for my $round (1 .. 5) {
  my %tree;
  $tree{ rnd() % 100 }{ rnd() % 100 }{ rnd() % 100 } = [ $round, word() ] for 1 .. 20_000;
  my $leaves = 0;
  for my $a (keys %tree) { for my $b (keys %{ $tree{$a} }) { $leaves += keys %{ $tree{$a}{$b} } } }
  print "round $round leaves $leaves\n";
}
my $digest = 0; $digest = ($digest * 31 + ord) % 1000000007 for split //, join '', @sorted[0 .. 999] ? map { $_->{name} } @sorted[0 .. 999] : ();
print "digest $digest\n";
print "done\n";
PERL

export PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
unset PERL5LIB PERL5OPT
pm_compare perl -- perl "$PM_TMP/work.pl"
[[ $PM_LAST_RC -eq 0 ]] || pm_fail "the perl script failed without poolmalloc too"
grep -qx 'done' "$PM_TMP/perl.pm.out" || pm_fail "the perl script did not finish"
pm_check_stats perl 100000
pm_log "passed"
