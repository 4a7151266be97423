// BASELINE ONLY: the hot query on Apollo Server 5, as a team would write it in Node.
//
//   REDIS_URL=redis://127.0.0.1:6379/0 BOOKS_JSON=books.json PORT=4000 NODE_ENV=production node server.mjs
//
// Apollo's standalone server, a DataLoader per request that reads every user of the
// request with one MGET of `reco:{user_id}`, and books from an in-memory map loaded at
// start from BOOKS_JSON (the harness exports the benchmark's SQLite catalog to it).
// It decodes bookrec's cache envelope (adapters/cache_codec.py: {"v": 2, "book_ids": [...],
// "scores": [...], "sources": [...], ...}) and answers the same query with the same JSON
// as bookrec. It serves cache hits only: a missing or unreadable entry is an empty list.
import { readFileSync } from "node:fs";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import DataLoader from "dataloader";
import Redis from "ioredis";

const FORMAT_VERSION = 2;

const typeDefs = `#graphql
  enum RecommendationSource { COLLABORATIVE POPULAR }
  type Book { id: ID! title: String! authors: [String!]! publicationYear: Int imageUrl: String }
  type Recommendation { book: Book! score: Float! source: RecommendationSource! }
  type User { id: ID! recommendations(limit: Int! = 10): [Recommendation!]! }
  type Query { user(id: ID!): User! users(ids: [ID!]!): [User!]! }
`;

const books = new Map();
for (const book of JSON.parse(readFileSync(process.env.BOOKS_JSON, "utf8"))) {
  books.set(book.id, book);
}

// AUTO_PIPELINING=1: ioredis sends the commands of one event-loop tick in one write, as bookrec's
// Redis adapter does with its MGETs (off by default in ioredis, so measured both ways).
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379/0", {
  enableAutoPipelining: process.env.AUTO_PIPELINING === "1",
});

function decode(raw) {
  if (raw === null) return [];
  try {
    const { v, book_ids: bookIds, scores, sources } = JSON.parse(raw);
    if (v !== FORMAT_VERSION || !Array.isArray(bookIds)) return [];
    return bookIds.map((bookId, index) => ({ book_id: bookId, score: scores[index], source: sources[index] }));
  } catch {
    return [];
  }
}

const resolvers = {
  Query: {
    user: (_, { id }) => ({ id }),
    users: (_, { ids }) => ids.map((id) => ({ id })),
  },
  User: {
    recommendations: async ({ id }, { limit }, { recommendations }) => {
      const items = (await recommendations.load(id)).slice(0, limit);
      return items
        .filter((item) => books.has(item.book_id))
        .map((item) => ({ book: books.get(item.book_id), score: item.score, source: item.source }));
    },
  },
};

const server = new ApolloServer({ typeDefs, resolvers });
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(process.env.PORT ?? 4000) },
  context: async () => ({
    recommendations: new DataLoader(async (ids) =>
      (await redis.mgetBuffer(ids.map((id) => `reco:${id}`))).map(decode),
    ),
  }),
});
console.log(`apollo baseline ready at ${url}`);
