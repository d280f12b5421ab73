# frozen_string_literal: true

require "open3"
require "tmpdir"
require "fileutils"

# Which native library `require "killer"` loads, in the layouts a gem can
# have: the source gem's lib/killer/killer.so, or the precompiled gem's
# lib/killer/<major.minor>/killer.so (bin/package). Each case copies lib/
# and loads it in a fresh Ruby.
RSpec.describe "the native library loader" do
  let(:ruby) { RUBY_VERSION[/\A\d+\.\d+/] }
  let(:built) { File.expand_path("../../lib/killer/killer.#{RbConfig::CONFIG["DLEXT"]}", __dir__) }

  around do |example|
    Dir.mktmpdir("killer-loader") do |dir|
      @lib = File.join(dir, "lib")
      FileUtils.cp_r(File.expand_path("../../lib", __dir__), @lib)
      FileUtils.rm(File.join(@lib, "killer", File.basename(built)))
      example.run
    end
  end

  def place(version, content: nil)
    FileUtils.mkdir_p(File.join(@lib, "killer", version))
    target = File.join(@lib, "killer", version, File.basename(built))
    content ? File.write(target, content) : FileUtils.cp(built, target)
  end

  def load_killer
    script = 'require "killer"; print $LOADED_FEATURES.grep(/killer\.so\z/).first'
    Open3.capture3({ "RUBYLIB" => nil, "RUBYOPT" => nil }, RbConfig.ruby, "-I", @lib, "-e", script)
  end

  it "loads the precompiled library for the running Ruby" do
    place(ruby)
    place("9.9", content: "not for this Ruby")
    out, err, status = load_killer
    expect(status).to be_success, err
    expect(out).to eq(File.join(@lib, "killer", ruby, File.basename(built)))
  end

  it "names the Rubies it has and the source gem when the running Ruby has no library" do
    place("9.8")
    place("9.9")
    _, err, status = load_killer
    expect(status).not_to be_success
    expect(err).to include("LoadError", "for Ruby 9.8 and 9.9, not Ruby #{ruby}",
                           "gem install sidekiq-killer --platform ruby")
  end

  it "says to install the source gem when the library for this Ruby does not load (a newer glibc)" do
    place(ruby, content: "not an ELF file")
    _, err, status = load_killer
    expect(status).not_to be_success
    expect(err).to include("precompiled native library does not load here",
                           "gem install sidekiq-killer --platform ruby")
  end

  it "says how to build it when the source gem's library is missing" do
    _, err, status = load_killer
    expect(status).not_to be_success
    expect(err).to include("native extension is not built", "run bin/setup")
  end
end
