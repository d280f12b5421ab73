# frozen_string_literal: true

require "optparse"

module Killer
  # The `killer` command, for shells and scripts:
  #
  #   killer cancel JID [--wait SECONDS]
  #   killer status JID
  #
  # Exit status: 0 done (with --wait: the job is no longer running), 1 a
  # Killer::Error (Redis unreachable...), 2 bad usage, 3 --wait ran out
  # with the job still running.
  class CLI
    USAGE = <<~TEXT
      Usage: killer [--redis-url URL] COMMAND ARGS

        killer cancel JID [--wait SECONDS]   cancel a Sidekiq job (running, queued or scheduled)
        killer status JID                    what became of a cancel: requested, cancelled, finished or none

      Redis: --redis-url, else REDIS_URL, else redis://localhost:6379/0.
    TEXT

    def initialize(argv, out: $stdout, err: $stderr)
      @argv = argv.dup
      @out = out
      @err = err
    end

    # The process's exit status.
    def run
      options = parse_globals
      return (@out.puts(Killer::VERSION) || 0) if options[:version]

      command = options[:help] ? "help" : @argv.shift
      case command
      when "cancel" then cancel(options)
      when "status" then status
      when nil, "help" then usage(0)
      else usage(2, "unknown command #{command.inspect}")
      end
    rescue OptionParser::ParseError, ArgumentError => e
      usage(2, e.message)
    rescue Error => e
      @err.puts "killer: #{e.message}"
      1
    end

    private

    def parse_globals
      options = {}
      parser = OptionParser.new do |o|
        o.on("--redis-url URL") { |url| Killer.configure { |c| c.redis_url = url } }
        o.on("--wait SECONDS", Float) { |s| options[:wait] = s }
        o.on("-h", "--help") { options[:help] = true }
        o.on("-v", "--version") { options[:version] = true }
      end
      parser.parse!(@argv)
      raise ArgumentError, "--wait is an option of `killer cancel`" if options[:wait] && @argv.first != "cancel"
      options
    end

    def jid_argument
      jid = @argv.shift
      raise ArgumentError, "a JID is required" unless jid
      raise ArgumentError, "unexpected argument #{@argv.first.inspect}" unless @argv.empty?

      jid
    end

    def cancel(options)
      jid = jid_argument
      result = Killer.cancel(jid, wait: options[:wait])
      return (@out.puts("requested") || 0) if result == true

      @out.puts(result || "none")
      result == :requested ? 3 : 0
    end

    def status
      @out.puts(Killer.status(jid_argument) || "none")
      0
    end

    def usage(code, problem = nil)
      @err.puts("killer: #{problem}") if problem
      (code.zero? ? @out : @err).puts(USAGE)
      code
    end
  end
end
