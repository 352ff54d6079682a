#!/usr/bin/env perl
# run.pl: run a command, or an array of jobs, on this machine, each with its own log file.
#
# Usage:
#   utils/run.pl [options] JOB=1:N log/name.JOB.log command args...
#   utils/run.pl [options] log/name.log command args...
#
#   Every "JOB" in the log name and in the command is replaced by the job index
#   (1..N); the range's variable may have any name: SPLIT=1:4 replaces "SPLIT".
#   Jobs run in parallel, at most --max-jobs-run of them at once.
#
# Options (each as "--name value" or "--name=value"):
#   --max-jobs-run N   run at most N jobs at once (default: all of them)
#   --num-threads N    only written to the log's "# Accounting" line
#   --gpu N, --mem X, --config FILE, and any other "--name value":
#                      accepted and ignored, so that a recipe's $cmd can switch between
#                      run.pl and slurm.pl (which maps them to sbatch options) freely.
#
# The command is run by bash. A single command argument is passed to bash as it is, so a
# quoted pipeline works:  run.pl log/x.log "gunzip -c a.gz | wc -l"
# With several arguments, each one without whitespace or quotes is passed as it is (so
# \| \> 2\>\&1 and $VARS work as in Kaldi), the others are single-quoted.
#
# Each log holds:
#   # <command>
#   # Started at <date>
#   <stdout and stderr of the command>
#   # Accounting: time=<seconds> threads=<num-threads>
#   # Ended (code <exit status>) at <date>, elapsed time <seconds> seconds
#
# Exit status: 0 when every job succeeded; otherwise 1 and, on stderr,
#   run.pl: <failed> / <jobs> failed, log is in <log of the first failed job>
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Path qw(make_path);

my $prog = "run.pl";
my $usage = "Usage: $prog [--max-jobs-run N] [--num-threads N] [--gpu N] [--mem X] "
  . "[JOB=1:N] <log-file> <command> [<args>...]\n";
my $max_jobs_run = 0;    # 0: all at once
my $num_threads = 1;

sub fail { print STDERR "$prog: $_[0]\n"; exit 1; }

while (@ARGV && $ARGV[0] =~ m/^--/) {
  my $opt = shift @ARGV;
  last if $opt eq "--";
  my ($name, $value);
  if ($opt =~ m/^--([^=]+)=(.*)$/s) {
    ($name, $value) = ($1, $2);
  } else {
    $name = substr($opt, 2);
    fail("option $opt needs a value") unless @ARGV;
    $value = shift @ARGV;
  }
  $name =~ tr/-/_/;
  if ($name eq "max_jobs_run") {
    fail("--max-jobs-run expects a positive integer, got '$value'") unless $value =~ m/^[1-9]\d*$/;
    $max_jobs_run = $value;
  } elsif ($name eq "num_threads") {
    fail("--num-threads expects a positive integer, got '$value'") unless $value =~ m/^[1-9]\d*$/;
    $num_threads = $value;
  }
  # Everything else (--gpu, --mem, --config, ...) is accepted and ignored.
}

my ($jobvar, $first, $last) = (undef, 1, 1);
if (@ARGV && $ARGV[0] =~ m/^([A-Za-z_]\w*)=(\d+):(\d+)$/) {
  ($jobvar, $first, $last) = ($1, $2, $3);
  shift @ARGV;
  fail("empty job range $jobvar=$first:$last") if $last < $first;
} elsif (@ARGV && $ARGV[0] =~ m/^([A-Za-z_]\w*)=(\d+)$/) {
  ($jobvar, $first, $last) = ($1, $2, $2);
  shift @ARGV;
}
if (@ARGV < 2) { print STDERR $usage; exit 1; }
my $log_template = shift @ARGV;
fail("the log file name '$log_template' does not contain $jobvar")
  if defined $jobvar && $last > $first && index($log_template, $jobvar) < 0;

my $cmd_template = join_command(@ARGV);

sub join_command {
  return $_[0] if @_ == 1;
  my @words;
  for my $a (@_) {
    if ($a =~ m/^[^\s'"\\]+$/) {
      push @words, $a;
    } else {
      (my $q = $a) =~ s/'/'\\''/g;
      push @words, "'$q'";
    }
  }
  return join(" ", @words);
}

sub substitute {
  my ($text, $job) = @_;
  $text =~ s/\Q$jobvar\E/$job/g if defined $jobvar;
  return $text;
}

my @jobs = ($first .. $last);
my %log_of = map { $_ => substitute($log_template, $_) } @jobs;
for my $job (@jobs) {
  my $dir = dirname($log_of{$job});
  next if -d $dir;
  eval { make_path($dir); 1 } or fail("cannot create log directory $dir: $@");
}

# Run one job: write the header, run the command with its output appended to the log,
# write the footer; exit with the command's status.
sub run_job {
  my ($job) = @_;
  my $log = $log_of{$job};
  my $cmd = substitute($cmd_template, $job);
  my $fh;
  unless (open($fh, ">", $log)) { print STDERR "$prog: cannot write $log: $!\n"; exit 1; }
  print $fh "# $cmd\n# Started at " . localtime() . "\n";
  close($fh);
  my $start = time();
  my $pid = fork();
  die "$prog: fork failed: $!\n" unless defined $pid;
  if ($pid == 0) {
    open(STDOUT, ">>", $log) or die "$prog: cannot write $log: $!\n";
    open(STDERR, ">&", \*STDOUT) or die "$prog: cannot redirect stderr: $!\n";
    exec("bash", "-c", $cmd) or die "$prog: cannot run bash: $!\n";
  }
  local $SIG{INT} = sub { };    # the command gets Ctrl-C itself; still write the footer
  local $SIG{TERM} = sub { kill("TERM", $pid); };
  my $got;
  do { $got = waitpid($pid, 0); } while ($got != $pid && $got != -1);
  my $status = $?;
  my $ret = ($status & 127) ? 128 + ($status & 127) : $status >> 8;
  my $elapsed = time() - $start;
  if (open($fh, ">>", $log)) {
    print $fh "# Accounting: time=$elapsed threads=$num_threads\n";
    print $fh "# Ended (code $ret) at " . localtime() . ", elapsed time $elapsed seconds\n";
    close($fh);
  }
  exit($ret > 255 ? 255 : $ret);
}

my %running;    # pid -> job
my %code;       # job -> exit status
my $stop = 0;
$SIG{INT} = sub { $stop = 1; };
$SIG{TERM} = sub { $stop = 1; kill("TERM", keys %running); };

sub reap {
  my $pid = wait();
  return if $pid == -1;
  my $job = delete $running{$pid};
  $code{$job} = $? if defined $job;
}

for my $job (@jobs) {
  reap() while $max_jobs_run && keys(%running) >= $max_jobs_run;
  last if $stop;
  my $pid = fork();
  fail("fork failed: $!") unless defined $pid;
  if ($pid == 0) {
    $SIG{INT} = $SIG{TERM} = 'DEFAULT';
    run_job($job);
  }
  $running{$pid} = $job;
}
reap() while keys %running;

my @failed = grep { !defined $code{$_} || $code{$_} != 0 } @jobs;
if (@failed) {
  printf STDERR "%s: %d / %d failed, log is in %s\n", $prog, scalar(@failed), scalar(@jobs), $log_of{$failed[0]};
  exit 1;
}
exit 0;
