/// A declared split of nested JSON records into rows of several entities (`mappings:` in
/// sluice.yml): per target, the field paths that fill its columns and, optionally, an
/// array to explode into one row per element. Pure: records in, rows out.
public struct JSONMapping: Sendable, Equatable {
    /// Where a column's value comes from.
    public enum Source: Sendable, Equatable {
        /// A dotted path in the current element (the record itself without `explode`).
        case element([String])
        /// A dotted path from the record's root (`$.order_id`), e.g. the parent key.
        case root([String])
        /// Lineage: the file (or object key) the record came from.
        case sourceName
        /// Lineage: the record's number in its file (1-based; the line, for NDJSON).
        case line
    }

    public struct Target: Sendable, Equatable {
        public var entity: String
        /// Path of an array in the record; each element makes a row. Nil: one row per record.
        public var explode: [String]?
        public var columns: [(name: String, source: Source)]

        public init(entity: String, explode: [String]? = nil, columns: [(name: String, source: Source)]) {
            self.entity = entity
            self.explode = explode
            self.columns = columns
        }

        public static func == (a: Target, b: Target) -> Bool {
            a.entity == b.entity && a.explode == b.explode && a.columns.map(\.name) == b.columns.map(\.name)
                && a.columns.map(\.source) == b.columns.map(\.source)
        }
    }

    public var name: String
    public var targets: [Target]

    public init(name: String, targets: [Target]) {
        self.name = name
        self.targets = targets
    }

    /// `a.b.c` → `.element([a, b, c])`; `$.a` → root; `$source` and `$line` → lineage.
    public static func source(_ text: String) throws(SluiceError) -> Source {
        switch text {
        case "$source": return .sourceName
        case "$line": return .line
        default:
            let root = text.hasPrefix("$.")
            let path = (root ? String(text.dropFirst(2)) : text).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !path.isEmpty, path.allSatisfy({ !$0.isEmpty }) else { throw SluiceError(.invalidConfig, "'\(text)' is not a field path (a.b.c, $.a.b, $source or $line)") }
            return root ? .root(path) : .element(path)
        }
    }

    /// The rows `record` makes for each target (in target order). A missing path is null;
    /// an `explode` path that is missing, null or not an array makes no rows.
    public func rows(_ record: JSONValue, line: Int64, sourceName: String) -> [[JSONValue]] {
        targets.map { t in
            var elements: [JSONValue]
            if let path = t.explode {
                guard case .array(let items)? = record.value(path: path) else { return [] }
                elements = items
            } else {
                elements = [record]
            }
            return elements.map { element in
                var members: [JSONMember] = []
                members.reserveCapacity(t.columns.count)
                for c in t.columns {
                    let v: JSONValue
                    switch c.source {
                    case .element(let p): v = element.value(path: p) ?? .null
                    case .root(let p): v = record.value(path: p) ?? .null
                    case .sourceName: v = .string(sourceName)
                    case .line: v = .number(String(line))
                    }
                    members.append(JSONMember(key: c.name, value: v))
                }
                return .object(members)
            }
        }
    }
}

extension JSONMapping {
    /// The mapping's paths ready for a ``JSONTape`` (keys as bytes), made once per file.
    public struct Compiled: Sendable {
        public struct Target: Sendable {
            public var explode: [JSONPathStep]?
            /// The `.element` columns' paths, then the `.root` ones', each set read in one pass.
            public var elementPaths: JSONPathSet
            public var rootPaths: JSONPathSet
            /// Per column, where its value comes from (plain bytes, read per row without copies).
            public var kinds: [Kind]
            /// Per column: its answer in `elementPaths` or `rootPaths` (-1 for lineage).
            public var answer: [Int]

            public enum Kind: UInt8, Sendable { case element, root, sourceName, line }

            init(_ t: JSONMapping.Target) {
                func steps(_ p: [String]) -> [JSONPathStep] { p.map(JSONPathStep.init) }
                explode = t.explode.map(steps)
                var element: [[JSONPathStep]] = []
                var root: [[JSONPathStep]] = []
                kinds = []
                answer = []
                for c in t.columns {
                    switch c.source {
                    case .element(let p):
                        element.append(steps(p))
                        kinds.append(.element)
                        answer.append(element.count - 1)
                    case .root(let p):
                        root.append(steps(p))
                        kinds.append(.root)
                        answer.append(root.count - 1)
                    case .sourceName:
                        kinds.append(.sourceName)
                        answer.append(-1)
                    case .line:
                        kinds.append(.line)
                        answer.append(-1)
                    }
                }
                elementPaths = JSONPathSet(element)
                rootPaths = JSONPathSet(root)
            }
        }

        public var targets: [Target]
    }

    public func compiled() -> Compiled { Compiled(targets: targets.map(Compiled.Target.init)) }
}
