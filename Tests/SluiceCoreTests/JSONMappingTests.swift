import Testing
@testable import SluiceCore

struct JSONMappingTests {
    static let order = try! JSONParser.parse("""
        {"id": "P1", "total": 10.5, "seller": {"id": "V9", "city": "Recife"},
         "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1, "extra": {"x": [1, 2]}}], "note": null}
        """)

    static func mapping() throws -> JSONMapping {
        JSONMapping(name: "m", targets: [
            .init(entity: "orders", columns: [("id", try JSONMapping.source("id")), ("seller", try JSONMapping.source("seller.id")),
                                              ("missing", try JSONMapping.source("no.such.path")), ("src", try JSONMapping.source("$source")),
                                              ("line", try JSONMapping.source("$line"))]),
            .init(entity: "items", explode: ["items"], columns: [("order", try JSONMapping.source("$.id")), ("sku", try JSONMapping.source("sku")),
                                                                   ("x", try JSONMapping.source("extra.x.1"))]),
            .init(entity: "tags", explode: ["tags"], columns: [("t", try JSONMapping.source("name"))]),
        ])
    }

    static func text(_ rows: [JSONValue]) -> [String] {
        rows.map { var out: [UInt8] = []; $0.write(into: &out); return String(decoding: out, as: UTF8.self) }
    }

    @Test func recordsBecomeRowsOfSeveralEntities() throws {
        let rows = try Self.mapping().rows(Self.order, line: 7, sourceName: "in/a.json")
        #expect(Self.text(rows[0]) == [#"{"id":"P1","seller":"V9","missing":null,"src":"in/a.json","line":7}"#])
        #expect(Self.text(rows[1]) == [#"{"order":"P1","sku":"A","x":null}"#, #"{"order":"P1","sku":"B","x":2}"#])
        #expect(rows[2].isEmpty)  // nothing to explode: no rows
    }

    @Test func pathsAreChecked() {
        #expect(throws: SluiceError.self) { try JSONMapping.source("a..b") }
        #expect(throws: SluiceError.self) { try JSONMapping.source("$.") }
        #expect((try? JSONMapping.source("$.a.b")) == .root(["a", "b"]))
        #expect((try? JSONMapping.source("$line")) == .line)
    }
}
