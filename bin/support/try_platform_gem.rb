# frozen_string_literal: true

# Run by `bin/package --try` inside a fresh Debian root that has only
# Debian's ruby, ruby-sidekiq and redis-server: installs the precompiled
# gem into a scratch GEM_HOME, runs the sample app (examples/installed) under
# a real `sidekiq`, and cancels its running job with the installed `killer`
# command. Exits non-zero saying what failed.
#   ruby try_platform_gem.rb /try/sidekiq-killer-VERSION-x86_64-linux.gem
require "fileutils"
require "open3"
require "socket"
require "tmpdir"

gem_file = ARGV.fetch(0)
app = File.join(__dir__, "app.rb")
system_name = "Debian #{File.read("/etc/debian_version").strip}, ruby #{RUBY_VERSION}"
def fail!(why) = abort("try_platform_gem: #{why}")

def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def await(what, seconds)
  deadline = clock + seconds
  until (value = yield)
    fail!("timed out after #{seconds} s waiting for #{what}") if clock > deadline
    sleep 0.05
  end
  value
end

tools = %w[cargo rustc clang gcc cc].select { |t| system("command -v #{t} >/dev/null 2>&1") }
fail!("this root has #{tools.join(", ")}; the point is a machine without them") if tools.any?

pids = []
home = Dir.mktmpdir("killer-home")
begin
  port = TCPServer.open("127.0.0.1", 0) { |s| s.addr[1] }
  pids << Process.spawn("redis-server", "--port", port.to_s, "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", out: File::NULL)
  await("redis-server", 20) do
    TCPSocket.open("127.0.0.1", port) do |s|
      s.write("PING\r\n")
      s.gets == "+PONG\r\n"
    end
  rescue SystemCallError
    false
  end
  env = { "GEM_HOME" => home, "GEM_PATH" => [home, *Gem.default_path].join(":"),
          "REDIS_URL" => "redis://127.0.0.1:#{port}/0", "RUBYLIB" => nil, "RUBYOPT" => nil }

  started = clock
  out, status = Open3.capture2e(env, "gem", "install", "--local", "--no-document", gem_file)
  install_s = clock - started
  fail!("gem install failed:\n#{out}") unless status.success?
  fail!("gem install compiled something:\n#{out}") if out.include?("Building native extensions")

  pids << Process.spawn(env, "sidekiq", "-r", app, "-c", "2", out: File.join(home, "sidekiq.log"), err: %i[child out])
  ENV["REDIS_URL"] = env["REDIS_URL"]
  require "sidekiq"
  jid = Sidekiq::Client.push("class" => "ExportJob", "args" => [])
  loaded = await("the job to start (sidekiq.log: #{File.join(home, "sidekiq.log")})", 120) do
    Sidekiq.redis { |r| r.get("installed:started:#{jid}") }
  end
  fail!("the job loaded #{loaded}, not the installed gem's library") unless loaded.start_with?(home)

  started = clock
  out, err, status = Open3.capture3(env, File.join(home, "bin", "killer"), "cancel", jid, "--wait", "5")
  cancel_ms = (clock - started) * 1000
  fail!("killer cancel said #{out.inspect} (exit #{status.exitstatus}): #{err}") unless out == "cancelled\n" && status.success?
  stopped = await("the job to end", 10) { Sidekiq.redis { |r| r.get("installed:stopped:#{jid}") } }
  fail!("the job ended with #{stopped}, not Killer::Cancelled") unless stopped == "Killer::Cancelled"

  puts format("try_platform_gem: %s: installed in %.1f s (nothing compiled); the job ran with %s; " \
              "`killer cancel` stopped it (%.0f ms, command included)",
              system_name, install_s, loaded.delete_prefix(home), cancel_ms)
ensure
  pids.reverse_each do |pid|
    Process.kill("TERM", pid)
    Process.wait(pid)
  rescue Errno::ESRCH, Errno::ECHILD
    nil
  end
  FileUtils.rm_rf(home)
end
