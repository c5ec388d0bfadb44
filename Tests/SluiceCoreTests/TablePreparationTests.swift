import Testing
@testable import SluiceCore

@Suite struct TablePreparationTests {
    let t = TableSchema(columns: [ColumnSchema(name: "id", type: .int64), ColumnSchema(name: "v", type: .int64)], primaryKey: ["id"])

    func decide(_ existing: TableSchema?, _ load: TableSchema, _ mode: WriteMode, evolve: Bool = false) throws -> TablePreparation {
        try TablePreparation.decide(table: "t", existing: existing, load: load, mode: mode, evolve: evolve)
    }

    @Test func oneRuleForEveryBackend() throws {
        var text = t
        text.columns[1].type = .text
        var wider = t
        wider.columns.append(ColumnSchema(name: "w", type: .text))
        var rekeyed = t
        rekeyed.primaryKey = ["v"]
        #expect(try decide(nil, t, .merge) == .create)
        #expect(try decide(t, t, .replace) == .empty)
        #expect(try decide(t, text, .replace) == .rebuild)  // a type changed
        #expect(try decide(t, wider, .replace) == .rebuild)
        #expect(try decide(t, rekeyed, .replace) == .rebuild)
        #expect(try decide(t, t, .merge) == .keep(adding: []))
        #expect(try decide(t, wider, .append, evolve: true) == .keep(adding: [wider.columns[2]]))
        #expect(throws: SluiceError.self) { try decide(t, wider, .merge) }
        #expect(throws: SluiceError.self) { try decide(t, rekeyed, .merge) }
        #expect(try decide(t, rekeyed, .append) == .keep(adding: []))  // append does not care about the key
    }
}
