# frozen_string_literal: true

require "json"
require "open3"
require "cgi"
require "net/http"
require_relative "../support/app"

# The Killer tab, told as one story against real processes: a Sidekiq
# process that keeps working (p1), a bloated one that recycles itself (p2),
# Sidekiq::Web under WEBrick, and, for the Cancel button, Debian's chromium
# driven by playwright-core (spec/browser). KILLER_SCREENSHOT=path keeps a
# screenshot of the tab.
RSpec.describe "The Killer tab in Sidekiq::Web", keep_redis: true do
  BROWSER = File.expand_path("../browser", __dir__)
  MEMORY = { grace: 0.2, check_interval: 0.2, min_uptime: 0, drain_timeout: 2, shutdown_wait: 0,
             gc_before_restart: false, min_live_processes: 1 }.freeze

  before(:all) do
    TestRedis.flush
    env = { "KILLER_TEST_MEMORY" => JSON.generate(MEMORY.merge(max_rss_mb: 100_000)) }
    @sidekiq = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: 3, env: env, queues: %w[p1 default]).start
    @web = WebServer.new(redis_url: TestRedis.url).start
  end

  after(:all) do
    @web&.stop
    @sidekiq&.stop
  end

  def page(path = "/killer") = Net::HTTP.get(URI("#{@web.url}#{path}"))

  # The rows of one of the tab's tables, as arrays of cell texts.
  def rows(html, table)
    body = html[%r{<table[^>]*id="#{table}".*?<tbody>(.*?)</tbody>}m, 1].to_s
    body.scan(%r{<tr.*?</tr>}m).map { |tr| tr.scan(%r{<td[^>]*>(.*?)</td>}m).map { |(td)| td.gsub(/<[^>]+>/, " ").squeeze(" ").strip } }
  end

  def pid_of(identity) = Integer(identity.split(":")[-2])

  it "lists the cancellable jobs running across the cluster, with their process, thread and arguments" do
    jid = SleepyJob.set(queue: "p1").perform_async(20)
    wait_for(10, "the job to start") { redis.lrange("test:events", 0, -1).include?("started:#{jid}") }
    # Killer's report lists it within report_interval; Sidekiq's work set
    # (thread, arguments) follows at Sidekiq's next heartbeat.
    row = wait_for(12, "the job with its thread") do
      r = rows(page, "killer-running").find { |cells| cells[3] == jid }
      r if r && !r[1].empty?
    end
    expect(row[0]).to eq(@sidekiq.identity)
    expect(row[2]).to eq("SleepyJob")
    expect(row[4]).to eq("20")
    expect(row[7]).to eq("Cancel")
    Killer.cancel(jid, by: "setup")
    wait_for(5, "the job to stop") { Killer.status(jid) == :cancelled }
  end

  it "shows each process's memory, limit, state and top growers, and a recycle in the history" do
    grow = Sidekiq::Client.push("class" => GrowJob, "args" => [30], "queue" => "p1")
    wait_for(10, "the job to grow") { redis.lrange("test:events", 0, -1).include?("finished:#{grow}") }
    bloated = SidekiqProcess.new(redis_url: TestRedis.url, concurrency: 2, timeout: 1, queues: %w[p2],
                                 env: { "KILLER_TEST_MEMORY" => JSON.generate(MEMORY.merge(max_rss_mb: 1)) })
    bloated.start
    bloated_pid = bloated.pid
    expect(bloated.wait_exit_status(30)).not_to be_nil, "the bloated process should recycle itself:\n#{bloated.log}"

    html = page
    mine = rows(html, "killer-processes").find { |cells| cells[0] == @sidekiq.identity }
    expect(mine).not_to be_nil, html
    expect(mine[2]).to match(/\A\d+(\.\d)? MB\z/)
    expect(mine[3]).to eq("100000 MB")
    expect(mine[4]).to eq("running")
    expect(mine[5]).to include("GrowJob", grow)
    expect(rows(html, "killer-processes").map(&:first)).not_to include(a_string_including(":#{bloated_pid}:"))

    history = rows(html, "killer-recycles").select { |cells| cells[1].end_with?(":#{bloated_pid}") }
    states = history.map { |cells| cells[2] }
    expect(states).to include("over_limit", "draining", "stopping")
    expect(history.map(&:last).join("\n")).to include("over max_rss_mb 1 MB", "stopping with TERM")
    expect(history.first[4]).to eq("1 MB")
  ensure
    bloated&.stop
  end

  it "cancels a running job when an operator clicks Cancel and confirms, in a real browser" do
    bystander = SleepyJob.set(queue: "p1").perform_async(60)
    jid = SleepyJob.set(queue: "p1").perform_async(60)
    wait_for(10, "the jobs to start") { (["started:#{jid}", "started:#{bystander}"] - redis.lrange("test:events", 0, -1)).empty? }
    shot = ENV.fetch("KILLER_SCREENSHOT", nil)
    env = { "KILLER_WEB_URL" => @web.url, "KILLER_JID" => jid, "KILLER_SCREENSHOT" => shot && File.expand_path(shot) }
    out, err, status = Open3.capture3(env.compact, "node", "cancel_in_browser.mjs", chdir: BROWSER)
    expect(status).to be_success, "the browser run failed:\n#{err}\nweb log:\n#{@web.log}"

    result = JSON.parse(out.lines.last)
    expect(result["notice"]).to eq("Cancel requested for #{jid} by alice.")
    expect(result["row"][0..5]).to eq([jid, "SleepyJob", result["row"][2], "alice", "stuck export", "cancelled"])
    expect(result["row"][6]).to match(/\A\d+ ms\z/)
    expect(result["still_running"]).to be(false)

    # The job really stopped, and only it: acknowledged, not retried.
    expect(Killer.status(jid)).to eq(:cancelled)
    wait_for(5, "the job's ensure") { redis.hexists("test:stopped_at", jid) }
    expect(redis.lrange("test:events", 0, -1)).not_to include("finished:#{jid}")
    expect(Sidekiq::RetrySet.new.size + Sidekiq::DeadSet.new.size).to eq(0)
    await_log_lines(@sidekiq, /cancel requested by alice \(stuck export\)/, jid: jid)
    expect(@sidekiq).to be_alive
    expect(redis.hexists("test:stopped_at", bystander)).to be(false)
    expect(rows(page, "killer-running").map { |cells| cells[3] }).to eq([bystander])
    Killer.cancel(bystander, wait: 5)
  end

  context "with a form that Sidekiq::Web must refuse" do
    # A session and its CSRF token, as the confirmation page hands them out.
    def session_and_token(jid)
      res = Net::HTTP.get_response(URI("#{@web.url}/killer/cancel?jid=#{jid}"))
      [res["set-cookie"].to_s[/\A[^;]+/], res.body[/name=.authenticity_token. value=.([^'"]+)./, 1]]
    end

    def post(form, cookie: nil, headers: {}, path: "/killer/cancel")
      req = Net::HTTP::Post.new(URI("#{@web.url}#{path}"))
      req["Cookie"] = cookie if cookie
      headers.each { |k, v| req[k] = v }
      req.set_form_data(form)
      Net::HTTP.start("127.0.0.1", @web.port) { |http| http.request(req) }
    end

    # A POST as the confirmation page's own form sends it: with the
    # session's token where Sidekiq renders one (up to 8.0), with the
    # browser's Sec-Fetch-Site header where it checks that instead (8.1+).
    def legit_post(form, path: "/killer/cancel")
      cookie, token = session_and_token("x")
      return post(form.merge("authenticity_token" => token), cookie: cookie, path: path) if token

      post(form, headers: { "Sec-Fetch-Site" => "same-origin" }, path: path)
    end

    it "cancels every running job of a class after a confirmation, lists the switch, and resumes it" do
      sync = Array.new(2) { SyncJob.set(queue: "p1").perform_async(60) }
      wait_for(10, "the jobs to start") { sync.all? { |jid| redis.lrange("test:events", 0, -1).include?("started:#{jid}") } }
      wait_for(12, "the tab to offer it") { page.include?("Cancel all running SyncJob") }
      # The count comes from the process's report, written every
      # report_interval: one written between the two starts lists one job.
      confirm = wait_for(12, "the confirmation to count both") do
        html = page("/killer/cancel_class?class=SyncJob")
        html if html.include?("2 SyncJob job(s) running now")
      end
      expect(confirm).to include("Yes, cancel every SyncJob job")

      history = redis.llen("killer:v1:history")
      refused = legit_post({ "class" => "SyncJob", "minutes" => "soon" }, path: "/killer/cancel_class")
      expect(refused.body[%r{id="killer-error">(.*?)</div>}m, 1]).to include("minutes must be a number, got &quot;soon&quot;")
      expect(redis.llen("killer:v1:history")).to eq(history)

      res = legit_post({ "class" => "SyncJob", "minutes" => "10", "by" => "bob", "reason" => "incident" },
                       path: "/killer/cancel_class")
      expect(res.code).to eq("302")
      wait_for(10, "both to stop") { sync.all? { |jid| Killer.status(jid) == :cancelled } }
      row = rows(page, "killer-switches").first
      expect(row.values_at(0, 2, 3, 4)).to eq(%w[SyncJob bob incident Resume])
      expect(Killer.switches.first[:until]).to be_within(5).of(Time.now + 600)
      # The switch is in the audit trail, not among the jid cancels.
      expect(rows(page, "killer-cancels").map(&:first)).not_to include("")

      expect(legit_post({ "class" => "SyncJob" }, path: "/killer/resume_class").code).to eq("302")
      expect(Killer.switches).to eq([])
      expect(page).not_to include('id="killer-switches"')
    end

    it "refuses a cross-site POST, by this Sidekiq's own mechanism, and records nothing" do
      cookie, token = session_and_token("x")
      res =
        if token # a session, and a token that is not its own
          post({ "jid" => "forged-2", "authenticity_token" => token.reverse }, cookie: cookie)
        else # what a browser sends for a form on another site
          post({ "jid" => "forged-2" }, headers: { "Sec-Fetch-Site" => "cross-site" })
        end
      expect(res.code).to eq("403")
      expect(Killer.status("forged-2")).to be_nil
    end

    it "refuses a POST without Sidekiq's CSRF token and records nothing" do
      history = redis.llen("killer:v1:history")
      res = post({ "jid" => "forged-1", "by" => "mallory" })
      expect(res.code).to eq("403")
      expect(Killer.status("forged-1")).to be_nil
      expect(redis.llen("killer:v1:history")).to eq(history)
    end

    it "shows a bad jid's ArgumentError on the confirmation page and records nothing" do
      history = redis.llen("killer:v1:history")
      res = legit_post({ "jid" => "x" * 2000, "reason" => "typo" })
      expect(res.code).to eq("200")
      expect(res.body[%r{id="killer-error">(.*?)</div>}m, 1]).to include("jid must be at most 1024 bytes, got 2000 bytes")
      expect(res.body).to include('value="typo"')
      res = legit_post({ "jid" => "" })
      expect(res.body).to include("jid must be a non-empty String")
      res = legit_post({ "jid" => "x", "reason" => "ok\n[forged] \e[31m" })
      expect(res.body[%r{id="killer-error">(.*?)</div>}m, 1]).to include("reason must not contain control characters")
      expect(redis.llen("killer:v1:history")).to eq(history)
    end
  end

  it "uses only classes that this Sidekiq's own stylesheets define" do
    require "killer/web"
    html = page
    sheets = html.scan(/<link[^>]+href="([^"]+\.css)"/).flatten
    css = sheets.map { |href| Net::HTTP.get(URI.join("#{@web.url}/", href)) }.join("\n")
    used = Killer::Web::Style.classes.values.compact.flat_map(&:split).uniq
    expect(used).not_to be_empty
    unstyled = used.reject { |klass| css.match?(/\.#{Regexp.escape(klass)}(?![\w-])/) }
    expect(unstyled).to be_empty, "not in #{sheets.join(", ")}: #{unstyled.join(", ")}"
    expect(html).to include(Killer::Web::Style.header("Killer"))
  end

  it "escapes what operators typed: a reason is text, never markup" do
    Killer.cancel("xss-1", by: "<b>eve</b>", reason: %(<script>alert("x")</script>))
    row = page[%r{<tr data-jid="xss-1">.*?</tr>}m]
    expect(row).to include("&lt;b&gt;eve&lt;/b&gt;", "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;")
    expect(row).not_to include("<script>", "<b>")
  end

  it "says so on the tab, instead of failing, when Killer's Redis is unreachable" do
    dead = RedisServer.new.url
    web = WebServer.new(redis_url: TestRedis.url, env: { "KILLER_REDIS_URL" => dead }).start
    res = Net::HTTP.get_response(URI("#{web.url}/killer"))
    expect(res.code).to eq("200")
    expect(CGI.unescapeHTML(res.body[%r{id="killer-notice">(.*?)</div>}m, 1])).to include("Cannot read Killer's records", "cannot reach Redis")
  ensure
    web&.stop
  end
end
