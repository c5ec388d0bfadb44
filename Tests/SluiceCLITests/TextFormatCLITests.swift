import Testing
import Foundation

/// Issue 24: seed 004's `data_points.txt` (three lines a record, DMS degrees, decimal commas)
/// becomes `lat, lon, distance_km, bearing` rows with no code; text files load as `line` rows.
@Suite struct TextFormatCLITests {
    static let points = "Latitude: 30°02′59″S   -30.04982864\r\nLongitude: 51°12′05″W   -51.20150245\r\nDistance: 2,2959 km Bearing: 137,352°\r\n"
        + "Latitude: 30°04′03″S   -30.06761588\r\nLongitude: 51°13′47″W   -51.22976787\r\nDistance: 4,4301 km Bearing: 204,918°\r\n"
        + "Latitude: garbage\r\nLongitude: 51°13′47″W   -51.22976787\r\nDistance: 4,4301 km Bearing: 204,918°\r\n"

    @Test func seed004sTextFileThroughParseAndHelpers() throws {
        let cli = try CLI()
        try FileManager.default.createDirectory(atPath: cli.dir + "/in", withIntermediateDirectories: true)
        cli.write("in/data_points.txt", Self.points)
        cli.write("sluice.yml", #"""
            pipelines:
              points:
                source: in
                glob: "*.txt"
                record: {starts_with: "Latitude:"}
                steps:
                  - parse:
                      line:
                        - '^Latitude: (?<lat_dms>\S+)\s+(?<lat>-?\d+\.\d+)\nLongitude: (?<lon_dms>\S+)\s+(?<lon>-?\d+\.\d+)\nDistance: (?<km>[\d,]+) km Bearing: (?<bearing>[\d,]+)°'
                  - derive:
                      lat: to_number(lat)
                      lon: dms_to_degrees(lon_dms)
                      distance_km: to_number(km, ',')
                      bearing: to_number(bearing, ',')
                  - select: [lat, lon, distance_km, bearing]
                into: points
            """#)
        // infer shows the grouping it would use, and the first records.
        let inferred = try cli.run(["infer", "in/data_points.txt"])
        #expect(inferred.out.contains("format: text") && inferred.out.contains("record: {starts_with: \"Latitude:\"}")
                && inferred.out.contains("#   line 4:\n#     Latitude: 30°04′03″S"), "\(inferred.out)\(inferred.err)")
        // Records without a marker word, in lines of a repeating shape: a fixed count.
        cli.write("people.txt", "Ana Lima\n42\nana@x.br\nBo Silva\n7\nbo@y.com\nCaio Reis\n100\ncaio@z.org\n")
        let counted = try cli.run(["infer", "people.txt"])
        #expect(counted.out.contains("record: {lines: 3}") && counted.out.contains("#   line 7:\n#     Caio Reis\n#     100"), "\(counted.out)")
        let v = try cli.run(["pipelines", "validate"])
        #expect(v.status == 0 && v.out.contains("fields: lat, lon, distance_km, bearing"), "\(v.out)\(v.err)")
        let r = try cli.run(["run", "points", "--json", "--quiet"])
        #expect(r.status == 0, "\(r.err)")
        let counts = try #require(try cli.json(r.out)["counts"] as? [String: Any])
        #expect(counts["read"] as? Int == 3 && counts["loaded"] as? Int == 2 && counts["rejected"] as? Int == 1, "\(counts)")
        #expect(try cli.sqlite("SELECT lat, round(lon, 6), distance_km, bearing FROM points ORDER BY lat DESC")
                == "-30.04982864|-51.201389|2.2959|137.352\n-30.06761588|-51.229722|4.4301|204.918\n")
        let rejects = try String(contentsOfFile: cli.dir + "/" + (counts["rejects_file"] as? String ?? ""), encoding: .utf8)
        #expect(rejects.contains("data_points.txt line 7") && rejects.contains("parse: no pattern matches line"), "\(rejects)")
        // A file of one record: its third line's decimal commas look like a delimiter to a
        // sniffer, but its first line has none, so it is text (it was read as CSV and failed).
        cli.write("in/one.txt", "Latitude: 30°02′59″S   -30.04982864\nLongitude: 51°12′05″W   -51.20150245\nDistance: 2,2959 km Bearing: 137,352°\n")
        try FileManager.default.removeItem(atPath: cli.dir + "/in/data_points.txt")
        let one = try cli.run(["run", "points", "--json", "--quiet"])
        #expect(one.status == 0, "\(one.err)")
        #expect(try cli.sqlite("SELECT count(*) FROM points") == "3\n")
        #expect(try cli.run(["load", "in/one.txt", "--into", "one_line_rows"]).status == 0)
        #expect(try cli.sqlite("SELECT count(*) FROM one_line_rows") == "3\n")
    }

    @Test func textFilesLoadAsLineRows() throws {
        let cli = try CLI()
        cli.write("app.log", "2024-01-02 10:00 start\n\n2024-01-02 10:01 stop\n")
        let r = try cli.run(["load", "app.log", "--into", "log", "--json"])
        #expect(r.status == 0, "\(r.err)")
        #expect(try cli.sqlite("SELECT line FROM log") == "2024-01-02 10:00 start\n2024-01-02 10:01 stop\n")
        // A .txt whose lines show a delimiter is still CSV; one that does not is text.
        cli.write("tab.txt", "id\tname\n1\tAna\n")
        #expect(try cli.run(["load", "tab.txt", "--into", "tab"]).status == 0)
        #expect(try cli.sqlite("SELECT name FROM tab") == "Ana\n")
        cli.write("sluice.yml", "entities:\n  notes:\n    format: text\n    record: blank_line\n")
        cli.write("notes.txt", "first note\nstill first\n\nsecond note\n")
        #expect(try cli.run(["load", "notes.txt", "--into", "notes"]).status == 0)
        #expect(try cli.sqlite("SELECT count(*), max(length(line)) FROM notes") == "2|22\n")
    }
}
