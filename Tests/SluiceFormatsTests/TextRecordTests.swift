import Testing
import Foundation
@testable import SluiceFormats
import SluiceCore

/// Issue 24: text files as records of one or several lines, streamed.
@Suite struct TextRecordTests {
    static let points = "Latitude: 30°02′59″S   -30.04982864\r\nLongitude: 51°12′05″W   -51.20150245\r\nDistance: 2,2959 km Bearing: 137,352°\r\n"
        + "\r\nLatitude: 30°04′03″S   -30.06761588\r\nLongitude: 51°13′47″W   -51.22976787\r\nDistance: 4,4301 km Bearing: 204,918°"

    func records(_ text: String, _ grouping: TextRecords, chunk: Int) throws -> [(String, Int64)] {
        var r = TextRecordReader(source: MemoryChunkReader(Array(text.utf8), chunkSize: chunk), records: grouping)
        defer { r.close() }
        var out: [(String, Int64)] = []
        while let (bytes, line) = try r.next() { out.append((String(decoding: bytes, as: UTF8.self), line)) }
        return out
    }

    @Test(arguments: [1, 3, 7, 4096])
    func groupingsAcrossReadBoundariesAndCRLF(chunk: Int) throws {
        let byMarker = try records(Self.points, .startsWith("Latitude:"), chunk: chunk)
        #expect(byMarker.map(\.1) == [1, 5])
        #expect(byMarker.first?.0 == "Latitude: 30°02′59″S   -30.04982864\nLongitude: 51°12′05″W   -51.20150245\nDistance: 2,2959 km Bearing: 137,352°")
        #expect(try records(Self.points, .lines(3), chunk: chunk).map(\.1) == [1, 5])
        #expect(try records(Self.points, .blankLine, chunk: chunk).map(\.1) == [1, 5])
        let lines = try records(Self.points, .line, chunk: chunk)
        #expect(lines.count == 6 && lines.map(\.1) == [1, 2, 3, 5, 6, 7] && lines[5].0 == "Distance: 4,4301 km Bearing: 204,918°")
    }

    /// A record starts only where a line begins with the marker: not a shorter line, not the
    /// marker further in; a line that is just the marker opens one.
    @Test(arguments: [1, 5, 4096])
    func aMarkerOpensARecordOnlyAtTheStartOfALine(chunk: Int) throws {
        let text = "L\nLa x\nLat: 1\nx Lat: 2\nLat:\nLa\n"
        let got = try records(text, .startsWith("Lat:"), chunk: chunk)
        #expect(got.map(\.1) == [1, 3, 5], "\(got)")
        #expect(got.map(\.0) == ["L\nLa x", "Lat: 1\nx Lat: 2", "Lat:\nLa"])
    }

    @Test func aRecordOverTheLimitNamesItsLine() throws {
        let text = "short\n" + String(repeating: "x", count: 5000) + "\n"
        var r = TextRecordReader(source: MemoryChunkReader(Array(text.utf8), chunkSize: 256), records: .line, maxRecordBytes: 1000)
        defer { r.close() }
        #expect(try r.next()?.line == 1)
        #expect(throws: SluiceError.self) { _ = try r.next() }
    }

    @Test func theGroupingIsGuessedFromTheFirstLines() {
        #expect(TextRecords.guess(["Latitude: 1", "Longitude: 2", "Distance: 3", "Latitude: 4", "Longitude: 5", "Distance: 6"]) == .startsWith("Latitude:"))
        #expect(TextRecords.guess(["a b", "c d", "", "e f", "g h"]) == .blankLine)
        #expect(TextRecords.guess(["2024 start", "2024 stop", "2025 x"]) == .line)
        // No marker, but the lines' shapes repeat every 3 lines: {lines: 3}.
        let people = ["Ana Lima", "42", "ana@x.br", "Bo Silva", "7", "bo@y.com", "Caio Reis", "100", "caio@z.org"]
        #expect(TextRecords.guess(people) == .lines(3))
        #expect(TextRecords.guess(Array(people.prefix(6))) == .line, "two periods are not enough")
        #expect(TextRecords.guess(["GET /a 200", "GET /b 404", "POST /c 201"]) == .line, "one shape: a line each")
        #expect(TextRecords.guess(["one"]) == .line)
    }
}
