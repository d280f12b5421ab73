# frozen_string_literal: true

require "open3"
require "rubygems/package"
require "tmpdir"

# The gem as a new user gets it: built, installed into a scratch GEM_HOME
# (compiling the extension through extconf.rb, without rb_sys), then used by
# a sample app under a real `sidekiq`, with the checkout out of the path.
RSpec.describe "the installed gem" do
  # The checkout is kept out of the path; a stack that brings Sidekiq as
  # source trees (bin/matrix's sidekiq8 leg) keeps those.
  STACK_RUBYLIB = ENV.fetch("KILLER_STACK_RUBYLIB", nil)

  def root = File.expand_path("../..", __dir__)

  before(:all) do
    @dir = Dir.mktmpdir("killer-gem")
    @home = File.join(@dir, "home")
    gem = File.join(@dir, "sidekiq-killer.gem")
    out, status = Open3.capture2e("gem", "build", "sidekiq-killer.gemspec", "-o", gem, chdir: root)
    raise "gem build failed:\n#{out}" unless status.success?

    @files = Gem::Package.new(gem).contents
    # cargo's cache of this checkout: the dependencies are built already,
    # so the install compiles the two crates of the gem, not a hundred.
    # What a user gets without CARGO_TARGET_DIR (target/ removed after the
    # install) is checked below on the Makefile extconf.rb writes.
    @cache = ENV.fetch("CARGO_TARGET_DIR", File.join(root, "target"))
    env = { "GEM_HOME" => @home, "CARGO_TARGET_DIR" => @cache, "RUBYLIB" => STACK_RUBYLIB }
    out, status = Open3.capture2e(env, "gem", "install", "--local", "--no-document", gem, chdir: @dir)
    raise "gem install failed:\n#{out}" unless status.success?
  end

  after(:all) { FileUtils.rm_rf(@dir) }

  # GEM_HOME first, then the system's gems (Sidekiq, redis-rb); no RUBYLIB.
  def gem_env
    { "GEM_HOME" => @home, "GEM_PATH" => [@home, *Gem.path].join(":"), "RUBYLIB" => STACK_RUBYLIB,
      "RUBYOPT" => nil, "REDIS_URL" => TestRedis.url }
  end

  it "ships what it needs and nothing else, and leaves no cargo target behind" do
    expect(@files).to include("Cargo.lock", "Cargo.toml", "ext/killer/extconf.rb", "exe/killer", "lib/killer.rb",
                              "crates/killer-core/src/lib.rs", "lib/killer/web.rb", "web/views/killer.erb",
                              "README.md", "CHANGELOG.md", "LICENSE")
    expect(@files.grep(%r{\A(spec|bench|target|examples|docs|\.ci)/|\.so\z|node_modules})).to be_empty
    installed = Dir[File.join(@home, "gems", "sidekiq-killer-*")].first
    expect(Dir.exist?(File.join(installed, "target"))).to be(false)
  end

  it "has extconf.rb remove cargo's target/ after installing, unless CARGO_TARGET_DIR keeps it elsewhere" do
    installed = Dir[File.join(@home, "gems", "sidekiq-killer-*")].first
    makefile = lambda do |env|
      dir = Dir.mktmpdir("killer-extconf")
      FileUtils.cp(File.join(installed, "ext/killer/extconf.rb"), dir)
      # As RubyGems runs it: from the gem's ext dir, the workspace two levels up, no .git.
      FileUtils.mkdir_p(File.join(dir, "w/ext/killer"))
      FileUtils.mv(File.join(dir, "extconf.rb"), File.join(dir, "w/ext/killer"))
      _, status = Open3.capture2e(env, RbConfig.ruby, "extconf.rb", chdir: File.join(dir, "w/ext/killer"))
      raise "extconf.rb failed" unless status.success?

      File.read(File.join(dir, "w/ext/killer/Makefile"))
    end
    expect(makefile.({ "CARGO_TARGET_DIR" => nil })).to match(/^install: all\n(\t.*\n)*\trm -rf \$\(TARGET_DIR\)$/)
    expect(makefile.({ "CARGO_TARGET_DIR" => "/var/cache/killer" })).not_to include("rm -rf")
  end

  it "loads the Web tab, with its templates, from the installed gem" do
    script = 'require "killer/web"; print Sidekiq::Web.tabs["Killer"], " ", $LOADED_FEATURES.grep(%r{killer/web/extension}).first'
    out, err, status = Open3.capture3(gem_env, "ruby", "-e", script, chdir: @dir)
    expect(status).to be_success, err
    tab, file = out.split(" ")
    expect(tab).to eq("killer")
    expect(file).to start_with(@home)
  end

  it "runs a sample app under sidekiq and cancels its job with the installed killer command" do
    log = File.join(@dir, "sidekiq.log")
    pid = Process.spawn(gem_env, "sidekiq", "-r", File.join(root, "examples/installed/app.rb"), "-c", "2",
                        out: log, err: %i[child out], chdir: @dir)
    jid = nil
    wait_for(20, "the installed app's sidekiq to heartbeat") do
      redis.smembers("processes").any? { |id| redis.hget(id, "info")&.include?("\"pid\":#{pid}") }
    end
    jid = Sidekiq::Client.push("class" => "ExportJob", "args" => [])
    loaded = wait_for(10, "the job to start") { redis.get("installed:started:#{jid}") }
    expect(loaded).to start_with(@home) # the installed extension, not the checkout's

    out, err, status = Open3.capture3(gem_env, File.join(@home, "bin", "killer"), "cancel", jid, "--wait", "5")
    expect([out, status.exitstatus]).to eq(["cancelled\n", 0]), err
    expect(wait_for(5) { redis.get("installed:stopped:#{jid}") }).to eq("Killer::Cancelled")
  ensure
    if pid
      Process.kill("TERM", pid)
      Process.wait(pid)
    end
  end
end
