import Testing
import Foundation

/// Issue 18: `sluice gc` (and serve's hourly pass) frees what `retention:` keeps no longer,
/// and never what an unfinished job, a retry or the scheduler still needs.
@Suite(.serialized) struct RetentionTests {
    func gc(_ cli: CLI, _ args: [String] = []) throws -> [String: Any] {
        let r = try cli.run(["gc", "--json"] + args)
        #expect(r.status == 0, "\(r.err)")
        return try cli.json(r.out)
    }

    @Test func uploadsGoWhenTheirJobsAreDoneAndDuplicatesAtOnce() async throws {
        // The server's own pass (a minute after start) would race the test's `sluice gc` on a
        // loaded machine; this test drives every pass itself.
        let srv = try ServerProcess(env: ["SLUICE_CLEANUP": "off"])
        let csv = "id,valor\n1,1.5\n2,2.5\n"
        var ids: [Int] = []
        for (body, query) in [(csv, ""), (csv, ""), ("id,valor\n3,x\n", "?max_rejects=0&filename=vendas.csv")] {
            let (s, o) = try await srv.json("POST", "/registros/_bulk\(query)", body: body, headers: ["Content-Type": "text/csv"])
            #expect(s == 202, "\(o)")
            let id = try #require(o["id"] as? Int)
            ids.append(id)
            _ = try await srv.wait(job: id) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        }
        let (_, dup) = try await srv.json("GET", "/registros/_bulk/status/\(ids[1])")
        #expect(dup["duplicate_of"] as? Int == ids[0], "\(dup)")
        let uploads = srv.cli.dir + "/.sluice/uploads"
        #expect(try filesUnder(uploads).count == 3)

        // Dry: said, not done. Then the duplicate's file goes at once; the others stay (7 days).
        let dry = try gc(srv.cli, ["--dry-run"])
        #expect(dry["uploads"] as? Int == 1 && dry["dry_run"] as? Bool == true, "\(dry)")
        #expect(try filesUnder(uploads).count == 3)
        let first = try gc(srv.cli)
        #expect(first["uploads"] as? Int == 1 && (first["upload_bytes"] as? Int ?? 0) == csv.utf8.count, "\(first)")
        #expect(try filesUnder(uploads).count == 2)

        // Kept for no days: the loaded upload goes, the failed job's stays for its retry.
        let yml = try String(contentsOfFile: srv.cli.dir + "/sluice.yml", encoding: .utf8)
        srv.cli.write("sluice.yml", yml + "\nretention: {uploads_days: 0, work_days: 0}\n")
        let second = try gc(srv.cli)
        #expect(second["uploads"] as? Int == 1 && (second["work_folders"] as? Int ?? 0) >= 2, "\(second)")
        #expect(try filesUnder(uploads).count == 1)
        let (_, failed) = try await srv.json("GET", "/registros/_bulk/status/\(ids[2])")
        #expect(failed["state"] as? String == "error", "\(failed)")
        // Its error names the file as it was sent and the rejects by their URL, not server paths.
        let error = failed["error"] as? String ?? ""
        #expect(error.hasPrefix("vendas.csv: more than 0 rows rejected (the rows: GET /registros/_bulk/\(ids[2])/rejects)") && !error.contains(".sluice"), "\(error)")
        #expect(try gc(srv.cli)["uploads"] as? Int == 0, "nothing left to free")
        // Job rows kept for no days: all three go, and with them what kept the last upload.
        srv.cli.write("sluice.yml", yml + "\nretention: {uploads_days: 0, work_days: 0, jobs_days: 0}\n")
        let dryJobs = try gc(srv.cli, ["--dry-run"])
        #expect(dryJobs["jobs"] as? Int == 3 && dryJobs["uploads"] as? Int == 1, "\(dryJobs)")
        let third = try gc(srv.cli)
        #expect(third["jobs"] as? Int == 3 && third["uploads"] as? Int == 1, "\(third)")
        #expect(try filesUnder(uploads).isEmpty)
        let (gone, _) = try await srv.request("GET", "/registros/_bulk/status/\(ids[0])")
        #expect(gone == 404)
    }

    /// Issue 21: an object in `storage:`'s uploads folder that no upload record names (its API
    /// host died between keeping and recording it) goes once past `orphans_days`; a recorded
    /// upload's object stays.
    @Test func orphanObjectsInTheStorageGoRecordedUploadsStay() async throws {
        let s3 = try S3Server.shared()
        let bucket = "orphans-" + UUID().uuidString.prefix(8).lowercased()
        try s3.boto3("s3.create_bucket(Bucket='\(bucket)')")
        let srv = try ServerProcess(yaml: "storage: s3://\(bucket)/sluice/", env: s3.env.merging(["SLUICE_CLEANUP": "off"]) { $1 })
        let (status, o) = try await srv.json("POST", "/registros/_bulk", body: "id,valor\n1,1.5\n", headers: ["Content-Type": "text/csv"])
        #expect(status == 202, "\(o)")
        let done = try await srv.wait(job: try #require(o["id"] as? Int)) { ["complete", "error"].contains($0["state"] as? String ?? "") }
        #expect(done["state"] as? String == "complete", "\(done)")
        try s3.boto3("s3.put_object(Bucket='\(bucket)', Key='sluice/uploads/orphan.csv', Body=b'id\\n1\\n')")
        let listing = "print(len(s3.list_objects_v2(Bucket='\(bucket)', Prefix='sluice/uploads/').get('Contents', [])))"
        #expect(try s3.boto3(listing) == "2")
        let r = try srv.cli.run(["gc", "--json"], env: s3.env)
        let first = try srv.cli.json(r.out)
        #expect(r.status == 0 && first["orphans"] as? Int == 0, "younger than an hour: kept \(r.out) \(r.err)")
        let yml = try String(contentsOfFile: srv.cli.dir + "/sluice.yml", encoding: .utf8)
        srv.cli.write("sluice.yml", yml + "\nretention: {orphans_days: 0}\n")
        let swept = try srv.cli.run(["gc", "--json"], env: s3.env)
        let report = try srv.cli.json(swept.out)
        #expect(swept.status == 0 && report["orphans"] as? Int == 1 && report["orphan_bytes"] as? Int == 5 && report["uploads"] as? Int == 0, "\(swept.out) \(swept.err)")
        #expect(try s3.boto3(listing) == "1", "the recorded upload's object stays")
    }

    @Test func oldRunsGoButEachPipelinesLatestSuccessStays() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/a.csv", "id,x\n1,5\n2,bad\n")
        cli.write("sluice.yml", """
            pipelines:
              p:
                source: in
                steps:
                  - cast: {id: int, x: int}
                into: out
            retention: {runs_days: 0}
            """)
        for _ in 0..<3 { #expect(try cli.run(["run", "p", "--reprocess", "--quiet"]).status == 0) }
        #expect(try filesUnder(cli.dir + "/.sluice/runs").count == 3, "each run's rejects file")
        let r = try gc(cli)
        #expect(r["runs"] as? Int == 2, "\(r)")
        #expect(try cli.sqlite("SELECT id FROM sluice_runs") == "3\n")
        #expect(try filesUnder(cli.dir + "/.sluice/runs") == ["p-3/rejects.csv"])
    }
}

/// Issue 18: the install path. Docker cannot run here, so the deployment files are checked by
/// linters (hadolint, the Compose file schema, systemd-analyze), and `sluice version` answers.
@Suite struct InstallFilesTests {
    @Test func deploymentFilesPassTheirLinters() throws {
        let out = try TestPostgres.run([TestPostgres.repoRoot + "/scripts/check-deploy.sh"])
        #expect(out.contains("hadolint clean") && out.contains("valid against the Compose file schema") && out.contains("verify clean"), "\(out)")
        let v = try CLI().run(["version"])
        #expect(v.status == 0 && v.out.hasPrefix("sluice 0.1.0 (commit "), "\(v.out)")
    }
}
