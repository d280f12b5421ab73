# frozen_string_literal: true

require "killer/web"

# Killer::Web.install picks Sidekiq's extension API by feature, not by
# version. The Sidekiq of each bin/matrix leg is the real one (6.4.1, 7.3.2,
# 8.1.7); the signatures no leg runs (7.3.7/8.0.0's `configure { register }`
# among them) are stand-ins with exactly those signatures.
RSpec.describe Killer::Web do
  it "uses 7.3's register(klass, name:, tab:, index:)" do
    web = Class.new do
      def self.tabs = (@tabs ||= {})

      def self.register(extension, name:, tab:, index:, root_dir: nil, asset_paths: nil, cache_for: 86_400)
        (@calls ||= []) << [extension, name, tab, index, root_dir, asset_paths, cache_for]
        tabs[tab] = index
      end

      def self.calls = @calls
    end
    expect(described_class.install(web)).to be(true)
    expect(web.calls).to eq([[Killer::Web::Extension, "killer", "Killer", "killer", nil, nil, 86_400]])
  end

  # A Sidekiq::Web whose `configure` yields a config answering only
  # `method` (with Sidekiq's signature); its class-level register must not
  # be used.
  def configurable_web(method)
    config = Class.new do
      attr_reader :calls

      define_method(method) do |extclass, name:, tab:, index:, root_dir: nil, cache_for: 86_400, asset_paths: nil|
        (@calls ||= []) << [extclass, name, tab, index, root_dir, cache_for, asset_paths]
      end
    end.new
    web = Class.new do
      define_singleton_method(:configure) { |&block| block.call(config) }
      def self.register(*) = raise("the deprecated class-level register must not be used")
    end
    [web, config]
  end

  { "the register of the config that 8.0.0's and 7.3.7's configure yields" => :register,
    "8's configure { |c| c.register_extension(...) }" => :register_extension }.each do |what, method|
    it "uses #{what}" do
      web, config = configurable_web(method)
      expect(described_class.install(web)).to be(true)
      expect(config.calls).to eq([[Killer::Web::Extension, "killer", "Killer", "killer", nil, 86_400, nil]])
    end
  end
end

# Sidekiq's work set yields a Hash with a parsed payload in 6 (the real one
# here) and a Sidekiq::Work whose payload is the job's JSON in 7 and 8.
RSpec.describe Killer::Web::Overview do
  job = { "jid" => "abc123", "class" => "ExportJob", "args" => [1, "x"] }

  it "reads a Sidekiq 6 work Hash" do
    expect(described_class.work_entry({ "queue" => "default", "payload" => job })).to eq([job, "default"])
  end

  it "reads a Sidekiq 7/8 Work whose payload is JSON" do
    work = Struct.new(:payload, :queue).new(JSON.generate(job), "critical")
    expect(described_class.work_entry(work)).to eq([job, "critical"])
  end

  it "ignores a payload that is not a job" do
    expect(described_class.work_entry({ "queue" => "q", "payload" => "[1]" })).to eq([{}, "q"])
  end
end
