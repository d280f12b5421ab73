# frozen_string_literal: true

require "logger"
require "optparse"
require "time"
require_relative "held_command"

module Killer
  # The `killer` command, for shells and scripts:
  #
  #   killer cancel JID [--wait SECONDS] [--by NAME] [--reason TEXT]
  #   killer status JID
  #   killer exclusive NAME [--ttl SECONDS] [--wait SECONDS] -- CMD ARGS...
  #   killer cancel-class CLASS --for DURATION [--by NAME] [--reason TEXT]
  #   killer resume-class CLASS
  #   killer switches
  #
  # `exclusive` passes TERM, INT, HUP, QUIT, USR1 and USR2 on to CMD and
  # keeps the lease until CMD has exited (Killer::HeldCommand).
  #
  # Exit status: 0 done (with --wait: the job is no longer running), 1 any
  # Redis problem (unreachable, refused, TLS, a Redis setting Killer cannot
  # use), 2 bad usage, 3 --wait ran out
  # with the job still running, 4 the lease is held elsewhere. `exclusive`
  # exits with CMD's status (128 + signal if a signal ended it).
  class CLI
    USAGE = <<~TEXT
      Usage: killer [--redis-url URL] [--redis-ca-file PEM] [-r FILE] COMMAND ARGS

        killer cancel JID [--wait S] [--by NAME] [--reason TEXT]
                                             cancel a Sidekiq job (running, queued or scheduled)
        killer status JID                    what became of a cancel: requested, cancelled, finished or none
        killer cancel-class CLASS --for DURATION [--by NAME] [--reason TEXT]
                                             cancel every running CLASS job and skip those that start
                                             within DURATION (90s, 30m, 1h, 2d; plain numbers are seconds)
        killer resume-class CLASS            let CLASS run again before its DURATION is over
        killer switches                      the classes cancelled now, with their end, by and reason
        killer exclusive NAME [--ttl S] [--wait S] -- CMD ARGS...
                                             run CMD only while holding lease NAME (ttl 15 s); stop it
                                             (TERM, then KILL after 10 s) if the lease is lost

      Redis: --redis-url (redis://, rediss://, unix://), else REDIS_URL, else
      redis://localhost:6379/0. --redis-ca-file: the CA to trust for rediss://.
      -r FILE loads Ruby that configures Sidekiq's or Killer's Redis (ssl_params,
      sentinels, ACL user...), as `sidekiq -r` does; the rest comes from there.
    TEXT

    # `argv` as the command line gave it; answers go to `out`, problems to `err`.
    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
    end

    # The process's exit status.
    def run
      # Killer's own log lines go to stderr, warnings up: stdout is the answer
      # (Sidekiq 7+ logs its pool's creation at info, to stdout).
      Killer.configure { |c| c.logger = Logger.new(@err, level: Logger::WARN, formatter: ->(_, _, _, msg) { "#{msg}\n" }) }
      ::Sidekiq.logger.level = Logger::WARN
      options = parse_globals
      return (@out.puts(Killer::VERSION) || 0) if options[:version]

      command = options[:help] ? "help" : @argv.shift
      return redis_problem(Killer.configuration.redis) if REDIS_COMMANDS.include?(command) && redis_unusable?

      case command
      when "cancel" then cancel(options)
      when "status" then status
      when "exclusive" then exclusive(options)
      when "cancel-class" then cancel_class(options)
      when "resume-class" then resume_class
      when "switches" then switches
      when nil, "help" then usage(0)
      else usage(2, "unknown command #{command.inspect}")
      end
    rescue RedisSettingError => e
      @err.puts "killer: cannot use Redis: #{RedisOptions.redact_url(e.message)}"
      1
    rescue OptionParser::ParseError, ArgumentError => e
      usage(2, e.message)
    rescue Error => e
      @err.puts "killer: #{e.message}"
      1
    end

    private

    REDIS_COMMANDS = %w[cancel status exclusive cancel-class resume-class switches].freeze

    # Builds the Redis client before any argument reaches it, so that every
    # Redis problem (a URL or ssl file Killer cannot use) exits 1, and only
    # the command line's own mistakes exit 2.
    def redis_unusable?
      Killer.configuration.client
      false
    rescue Error, ArgumentError => e
      @redis_error = e
      true
    end

    def redis_problem(redis)
      @err.puts "killer: cannot use Redis: #{redis.redact(@redis_error.message)}"
      1
    rescue Error, ArgumentError
      @err.puts "killer: cannot use Redis: #{RedisOptions.redact_url(@redis_error.message)}"
      1
    end

    def parse_globals
      options = {}
      parser = OptionParser.new do |o|
        o.on("--redis-url URL") { |url| options[:redis_url] = url }
        o.on("--redis-ca-file PEM") { |file| options[:ca_file] = file }
        o.on("-r", "--require FILE") { |file| options[:require] = file }
        o.on("--wait SECONDS", Float) { |s| options[:wait] = s }
        o.on("--ttl SECONDS", Float) { |s| options[:ttl] = s }
        o.on("--by NAME") { |s| options[:by] = s }
        o.on("--reason TEXT") { |s| options[:reason] = s }
        o.on("--for DURATION") { |s| options[:for] = s }
        o.on("-h", "--help") { options[:help] = true }
        o.on("-v", "--version") { options[:version] = true }
      end
      parser.parse!(@argv)
      configure_redis(options)
      raise ArgumentError, "--wait is an option of `killer cancel` and `killer exclusive`" if options[:wait] && !%w[cancel exclusive].include?(@argv.first)
      raise ArgumentError, "--ttl is an option of `killer exclusive`" if options[:ttl] && @argv.first != "exclusive"
      if (options[:by] || options[:reason]) && !%w[cancel cancel-class].include?(@argv.first)
        raise ArgumentError, "--by and --reason are options of `killer cancel` and `killer cancel-class`"
      end
      raise ArgumentError, "--for is an option of `killer cancel-class`" if options[:for] && @argv.first != "cancel-class"
      options
    end

    # -r first (it may configure Sidekiq or Killer), then the flags on top.
    def configure_redis(options)
      if (file = options[:require])
        begin
          require File.expand_path(file)
        rescue LoadError => e
          raise OptionParser::InvalidArgument, "-r #{file}: #{e.message}"
        end
      end
      url = options[:redis_url]
      return unless url || options[:ca_file]

      settings = { url: url || ENV.fetch("REDIS_URL", RedisOptions::DEFAULT_URL) }
      settings[:ssl_params] = { ca_file: options[:ca_file] } if options[:ca_file]
      Killer.configure { |c| c.redis = settings }
    rescue ArgumentError => e
      @redis_error = e
      raise RedisSettingError, e.message
    end

    # A Redis setting Killer cannot use, given on the command line: exit 1.
    class RedisSettingError < StandardError; end

    def jid_argument
      jid = @argv.shift
      raise ArgumentError, "a JID is required" unless jid
      raise ArgumentError, "unexpected argument #{@argv.first.inspect}" unless @argv.empty?

      jid
    end

    def cancel(options)
      jid = jid_argument
      result = Killer.cancel(jid, wait: options[:wait], by: options[:by], reason: options[:reason])
      return (@out.puts("requested") || 0) if result == true

      @out.puts(result || "none")
      result == :requested ? 3 : 0
    end

    def status
      @out.puts(Killer.status(jid_argument) || "none")
      0
    end

    DURATION_UNITS = { "s" => 1, "m" => 60, "h" => 3600, "d" => 86_400 }.freeze

    # "90s", "30m", "1h", "2d" or plain seconds, as Float seconds.
    def duration(text)
      raise ArgumentError, "--for DURATION is required (90s, 30m, 1h, 2d)" unless text

      match = text.strip.match(/\A(\d+(?:\.\d+)?)\s*([smhd]?)\z/)
      raise ArgumentError, "--for must be a duration like 90s, 30m, 1h or 2d, got #{Validation.shown(text)}" unless match

      Float(match[1]) * DURATION_UNITS.fetch(match[2], 1)
    end

    def class_argument
      klass = @argv.shift
      raise ArgumentError, "a CLASS is required" unless klass
      raise ArgumentError, "unexpected argument #{@argv.first.inspect}" unless @argv.empty?

      klass
    end

    def cancel_class(options)
      klass = class_argument
      until_time = Killer.cancel_class(klass, for: duration(options[:for]), by: options[:by], reason: options[:reason])
      @out.puts "#{klass} cancelled until #{until_time.utc.iso8601}"
      0
    end

    def resume_class
      klass = class_argument
      @out.puts(Killer.resume_class(klass) ? "#{klass} resumed" : "#{klass} was not cancelled")
      0
    end

    def switches
      raise ArgumentError, "unexpected argument #{@argv.first.inspect}" unless @argv.empty?

      Killer.switches.each do |s|
        # Escaped: a record written around Killer must not reach a terminal raw.
        @out.puts [s[:class], s[:until].utc.iso8601, s[:by], s[:reason]].map { |v| Log.escape(v) }.join("\t")
      end
      0
    end

    def exclusive(options)
      name = @argv.shift
      raise ArgumentError, "a lease NAME is required" unless name
      raise ArgumentError, "a command is required after --" if @argv.empty?

      held = HeldCommand.new(@argv.dup)
      status = nil
      taken = Killer.exclusive(name, ttl: options.fetch(:ttl, 15), wait: options.fetch(:wait, false)) do
        status = held.run
      end
      return held_elsewhere(name) if taken == false
      # Told to stop by a signal, as a shell: 128 + the signal.
      return 128 + Signal.list.fetch(held.forwarded) if held.forwarded

      exit_code(status)
    rescue LeaseLost => e
      held&.stop
      @err.puts "killer: #{e.message}; stopped #{@argv.first}"
      143
    end

    def held_elsewhere(name)
      @err.puts "killer: lease #{name} is held elsewhere"
      4
    end

    def exit_code(status)
      return 143 unless status # stopped by TERM before it reported

      status.exitstatus || (128 + status.termsig.to_i)
    end

    def usage(code, problem = nil)
      @err.puts("killer: #{problem}") if problem
      (code.zero? ? @out : @err).puts(USAGE)
      code
    end
  end
end
