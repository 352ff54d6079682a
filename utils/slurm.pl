#!/usr/bin/env perl
# slurm.pl: run a command, or an array of jobs, on a Slurm cluster; same interface as run.pl.
#
# Usage:
#   utils/slurm.pl [options] JOB=1:N log/name.JOB.log command args...
#   utils/slurm.pl [options] log/name.log command args...
#
#   "JOB" is replaced by the job index in the log name and the command (as in run.pl).
#   For each job, a batch script log/q/name.<j>.sh is written and submitted with
#   `sbatch --parsable --wait`; the submissions run in parallel (at most --max-jobs-run
#   at once) and slurm.pl returns when all jobs have ended. Slurm's own output of a job
#   goes to log/q/name.<j>.out, what sbatch printed (the job id or an error) to
#   log/q/name.<j>.submit. Ctrl-C or SIGTERM cancels the submitted jobs (scancel).
#
# Options (each as "--name value" or "--name=value"):
#   --config FILE      option mapping (default: conf/slurm.conf if it exists, relative to the
#                      current directory, else the built-in default shown below)
#   --max-jobs-run N   at most N jobs submitted at once (default: all of them)
#   --num-threads N    written to the "# Accounting" line; mapped through the config
#   --NAME VALUE       any option the config describes with an "option NAME=..." line,
#                      e.g. --gpu 1, --mem 8G, --num-threads 4; any other option is an error.
#
# Config file lines ("#" starts a comment):
#   command sbatch --export=PATH        the submit command and its fixed options
#   option mem=* --mem $0               --mem V adds "--mem V" ($0 is the value)
#   option mem=0                        --mem 0 adds nothing (an exact value wins over *)
#   option gpu=* --gres=gpu:$0 -p gpu
#   option gpu=0 -p cpu
#   default gpu=0                       value used when the option is not given
#
# Each log has the same header and footer as run.pl's (plus a "# Running on <host>" line);
# failures are reported the same way: "slurm.pl: <k> / <N> failed, log is in <log>", exit 1.
# The batch script runs the command from the current directory, after sourcing ./path.sh
# when it exists.
use strict;
use warnings;
use Cwd qw(getcwd);
use File::Basename qw(basename dirname);
use File::Path qw(make_path);

my $prog = "slurm.pl";
my $usage = "Usage: $prog [--config FILE] [--max-jobs-run N] [--num-threads N] [--gpu N] [--mem X] "
  . "[JOB=1:N] <log-file> <command> [<args>...]\n";
my $default_config = <<'CONF';
command sbatch --export=PATH
option mem=* --mem $0
option mem=0
option num_threads=* --cpus-per-task $0
option num_threads=1 --cpus-per-task 1
option gpu=* --gres=gpu:$0 -p gpu
option gpu=0 -p cpu
default gpu=0
CONF
my $sync_wait = $ENV{BANDA_SLURM_SYNC_WAIT} // 60;    # seconds to wait for a log on NFS

sub fail { print STDERR "$prog: $_[0]\n"; exit 1; }

my $config_file;
my $max_jobs_run = 0;
my %given;    # option name (underscores) -> value
my @given_order;
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
  if ($name eq "config") {
    $config_file = $value;
  } elsif ($name eq "max_jobs_run") {
    fail("--max-jobs-run expects a positive integer, got '$value'") unless $value =~ m/^[1-9]\d*$/;
    $max_jobs_run = $value;
  } else {
    push @given_order, $name unless exists $given{$name};
    $given{$name} = $value;
  }
}
fail("--num-threads expects a positive integer, got '$given{num_threads}'")
  if exists $given{num_threads} && $given{num_threads} !~ m/^[1-9]\d*$/;
my $num_threads = $given{num_threads} // 1;

# --- the config: submit command and option mapping -------------------------------------
my $config_text;
my $config_name;
if (defined $config_file) {
  open(my $fh, "<", $config_file) or fail("cannot read config file $config_file: $!");
  local $/;
  $config_text = <$fh>;
  close($fh);
  $config_name = $config_file;
} elsif (-f "conf/slurm.conf") {
  open(my $fh, "<", "conf/slurm.conf") or fail("cannot read conf/slurm.conf: $!");
  local $/;
  $config_text = <$fh>;
  close($fh);
  $config_name = "conf/slurm.conf";
} else {
  $config_text = $default_config;
  $config_name = "the default config";
}

my @submit;
my %wildcard;    # name -> [args with $0]
my %exact;       # name -> {value -> [args]}
my %default;     # name -> value
my @option_names;
my $lineno = 0;
for my $line (split /\n/, $config_text) {
  $lineno++;
  $line =~ s/#.*//;
  my @w = split(" ", $line);
  next unless @w;
  my $where = "$config_name:$lineno";
  if ($w[0] eq "command") {
    fail("$where: 'command' needs the submit program") if @w < 2;
    @submit = @w[1 .. $#w];
  } elsif ($w[0] eq "option" && @w >= 2 && $w[1] =~ m/^(\w+)=(.*)$/) {
    my ($name, $value) = ($1, $2);
    push @option_names, $name unless exists $wildcard{$name} || exists $exact{$name};
    if ($value eq "*") {
      $wildcard{$name} = [@w[2 .. $#w]];
    } else {
      $exact{$name}{$value} = [@w[2 .. $#w]];
    }
  } elsif ($w[0] eq "default" && @w == 2 && $w[1] =~ m/^(\w+)=(.*)$/) {
    $default{$1} = $2;
  } else {
    fail("$where: cannot parse '$line' (expected 'command ...', 'option NAME=VALUE ...' or 'default NAME=VALUE')");
  }
}
fail("$config_name has no 'command' line") unless @submit;
for my $name (@given_order) {
  next if exists $wildcard{$name} || exists $exact{$name};
  (my $opt = $name) =~ tr/_/-/;
  fail("option --$opt is not described in $config_name (add an 'option $name=...' line)");
}
for my $name (@option_names) {
  my $value = exists $given{$name} ? $given{$name} : $default{$name};
  next unless defined $value;
  if (exists $exact{$name} && exists $exact{$name}{$value}) {
    push @submit, @{ $exact{$name}{$value} };
  } elsif (exists $wildcard{$name}) {
    push @submit, map { (my $a = $_) =~ s/\$0/$value/g; $a } @{ $wildcard{$name} };
  } else {
    (my $opt = $name) =~ tr/_/-/;
    fail("no line of $config_name matches --$opt $value");
  }
}

# --- jobs --------------------------------------------------------------------------------
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

sub join_command {    # as in run.pl
  return $_[0] if @_ == 1;
  return join(" ", map { m/^[^\s'"\\]+$/ ? $_ : shell_quote($_) } @_);
}

sub shell_quote {
  (my $q = $_[0]) =~ s/'/'\\''/g;
  return "'$q'";
}

sub substitute {
  my ($text, $job) = @_;
  $text =~ s/\Q$jobvar\E/$job/g if defined $jobvar;
  return $text;
}

my $cwd = getcwd();
my @jobs = ($first .. $last);
my (%log_of, %script_of, %out_of, %submit_of);
for my $job (@jobs) {
  my $log = $log_of{$job} = substitute($log_template, $job);
  my $qdir = dirname($log) . "/q";
  (my $base = basename($log)) =~ s/\.log$//;
  $script_of{$job} = "$qdir/$base.sh";
  $out_of{$job} = "$qdir/$base.out";
  $submit_of{$job} = "$qdir/$base.submit";
  unless (-d $qdir) {
    eval { make_path($qdir); 1 } or fail("cannot create directory $qdir: $@");
  }
  # A stale log from an earlier run must never be taken for this run's result.
  unlink($log, $out_of{$job}, $submit_of{$job});
  write_script($job);
}

sub write_script {
  my ($job) = @_;
  my $log = $log_of{$job};
  my $cmd = substitute($cmd_template, $job);
  my $qlog = shell_quote($log);
  my $script = <<"SCRIPT";
#!/bin/bash
# Written by $prog; submitted with: @submit
cd @{[shell_quote($cwd)]} || exit 1
[ -f ./path.sh ] && . ./path.sh
{
  printf '# %s\\n' @{[shell_quote($cmd)]}
  echo "# Started at \$(date)"
  echo "# Running on \$(hostname) (slurm job \${SLURM_JOB_ID:-unknown})"
} >$qlog
time1=\$(date +%s)
(
$cmd
) >>$qlog 2>&1
ret=\$?
time2=\$(date +%s)
echo "# Accounting: time=\$((time2 - time1)) threads=$num_threads" >>$qlog
echo "# Ended (code \$ret) at \$(date), elapsed time \$((time2 - time1)) seconds" >>$qlog
exit \$ret
SCRIPT
  open(my $fh, ">", $script_of{$job}) or fail("cannot write $script_of{$job}: $!");
  print $fh $script;
  close($fh);
  chmod(0755, $script_of{$job});
}

# The exit code in the log's "# Ended (code N)" line, or undef if there is none (yet).
sub logged_code {
  my ($log) = @_;
  open(my $fh, "<", $log) or return undef;
  my $code;
  while (my $line = <$fh>) {
    $code = $1 if $line =~ m/^# Ended \(code (\d+)\)/;
  }
  close($fh);
  return $code;
}

sub submit_job {    # in a child process: sbatch --wait; exit with its status
  my ($job) = @_;
  (my $name = basename($log_of{$job})) =~ s/\.log$//;
  open(STDOUT, ">", $submit_of{$job}) or die "$prog: cannot write $submit_of{$job}: $!\n";
  open(STDERR, ">&", \*STDOUT) or die "$prog: cannot redirect stderr: $!\n";
  exec(@submit, "--job-name=$name", "--output=$out_of{$job}", "--parsable", "--wait", $script_of{$job})
    or die "$prog: cannot run $submit[0]: $!\n";
}

sub cancel_all {    # scancel every job that has been submitted
  my @ids;
  for my $job (@jobs) {
    open(my $fh, "<", $submit_of{$job}) or next;
    while (my $line = <$fh>) { push @ids, $1 if $line =~ m/^(\d+)(;\S*)?\s*$/; }
    close($fh);
  }
  system("scancel", @ids) if @ids;
}

my %running;    # pid -> job
my %status;     # job -> sbatch's exit status
my $stop = 0;
$SIG{INT} = $SIG{TERM} = sub {
  return if $stop;
  $stop = 1;
  print STDERR "$prog: interrupted, cancelling the submitted jobs\n";
  cancel_all();
  kill("TERM", keys %running);
};

sub reap {
  my $pid = wait();
  return if $pid == -1;
  my $job = delete $running{$pid};
  $status{$job} = $? if defined $job;
}

for my $job (@jobs) {
  reap() while $max_jobs_run && keys(%running) >= $max_jobs_run;
  last if $stop;
  my $pid = fork();
  fail("fork failed: $!") unless defined $pid;
  if ($pid == 0) {
    $SIG{INT} = $SIG{TERM} = 'DEFAULT';
    submit_job($job);
  }
  $running{$pid} = $job;
}
reap() while keys %running;

my @failed;
for my $job (@jobs) {
  my $code = logged_code($log_of{$job});
  if (!defined $code && defined $status{$job} && $status{$job} == 0 && !$stop) {
    # The job ended fine for Slurm, but its log may not have reached this node yet (NFS).
    for (my $waited = 0; !defined $code && $waited < $sync_wait; $waited++) {
      sleep(1);
      $code = logged_code($log_of{$job});
    }
  }
  next if defined $code && $code == 0;
  push @failed, $job;
  if (!defined $code) {
    my $st = defined $status{$job} ? $status{$job} >> 8 : "none";
    print STDERR "$prog: job $job left no complete log (sbatch exit status $st); "
      . "see $submit_of{$job} and $out_of{$job}\n";
  }
}
if (@failed) {
  printf STDERR "%s: %d / %d failed, log is in %s\n", $prog, scalar(@failed), scalar(@jobs), $log_of{$failed[0]};
  exit 1;
}
exit 0;
