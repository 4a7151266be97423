"""The BookCatalog contract: what every catalog adapter must do, whatever it stores in.

An adapter's test module subclasses `BookCatalogContract` (as `Test...`) and
provides a `book_catalog` fixture yielding an EMPTY catalog.
"""

from __future__ import annotations

from domain.models import Book
from domain.ports import BookCatalog

HUNGER_GAMES = Book(
    id=1,
    title="The Hunger Games (The Hunger Games, #1)",
    authors=("Suzanne Collins",),
    publication_year=2008,
    image_url="https://images.gr-assets.com/books/1447303603m/2767052.jpg",
    average_rating=4.34,
    ratings_count=4780653,
)
HARRY_POTTER = Book(2, "Harry Potter and the Sorcerer's Stone", ("J.K. Rowling", "Mary GrandPré"), 1997, None, 4.44, 4602479)
ODYSSEY = Book(3, "The Odyssey", ("Homer", "Robert Fagles", "Bernard Knox"), -720, None, 3.73, 670326)
BARE = Book(4, "Untitled, as yet", ())


def numbered(book_id: int) -> Book:
    return Book(book_id, f"Book {book_id}", (f"Author {book_id % 13}",), 1900 + book_id % 120, None, 3.5, book_id)


def counted(book_id: int, ratings_count: int) -> Book:
    return Book(book_id, f"Book {book_id}", ("Someone",), None, None, None, ratings_count)


class BookCatalogContract:
    async def test_an_empty_catalog_finds_nothing(self, book_catalog: BookCatalog) -> None:
        assert await book_catalog.get_many([1, 2, 3]) == {}

    async def test_books_round_trip_field_for_field(self, book_catalog: BookCatalog) -> None:
        books = [HUNGER_GAMES, HARRY_POTTER, ODYSSEY]

        assert await book_catalog.put_many(books) == 3
        assert await book_catalog.get_many([1, 2, 3]) == {book.id: book for book in books}

    async def test_authors_come_back_as_a_tuple_in_order(self, book_catalog: BookCatalog) -> None:
        await book_catalog.put_many([ODYSSEY])

        [found] = (await book_catalog.get_many([ODYSSEY.id])).values()

        assert found.authors == ("Homer", "Robert Fagles", "Bernard Knox")
        assert isinstance(found.authors, tuple)

    async def test_absent_optional_fields_come_back_absent(self, book_catalog: BookCatalog) -> None:
        await book_catalog.put_many([BARE])

        found = (await book_catalog.get_many([BARE.id]))[BARE.id]

        assert found == BARE
        assert found.publication_year is None and found.image_url is None and found.average_rating is None

    async def test_unknown_ids_are_absent_from_the_result(self, book_catalog: BookCatalog) -> None:
        await book_catalog.put_many([HUNGER_GAMES, HARRY_POTTER])

        assert await book_catalog.get_many([2, 999, 1, 404]) == {1: HUNGER_GAMES, 2: HARRY_POTTER}

    async def test_asking_twice_for_a_book_finds_it_once(self, book_catalog: BookCatalog) -> None:
        await book_catalog.put_many([HUNGER_GAMES])

        assert await book_catalog.get_many([1, 1, 1]) == {1: HUNGER_GAMES}

    async def test_put_many_overwrites_a_book_and_keeps_the_last_duplicate(self, book_catalog: BookCatalog) -> None:
        await book_catalog.put_many([HUNGER_GAMES])
        renamed = Book(1, "Renamed", ("Someone Else",), None, None, None, 0)

        written = await book_catalog.put_many(Book(1, f"Draft {n}", ()) for n in range(3))
        await book_catalog.put_many([renamed])

        assert written == 1
        assert await book_catalog.get_many([1]) == {1: renamed}

    async def test_get_many_of_more_than_a_hundred_books(self, book_catalog: BookCatalog) -> None:
        books = [numbered(book_id) for book_id in range(1, 151)]
        await book_catalog.put_many(books)

        found = await book_catalog.get_many([book.id for book in reversed(books)] + [10_000])

        assert found == {book.id: book for book in books}

    async def test_get_many_of_more_than_a_thousand_books(self, book_catalog: BookCatalog) -> None:
        books = [numbered(book_id) for book_id in range(1, 1_201)]
        await book_catalog.put_many(books)

        found = await book_catalog.get_many(list(range(1, 1_301)))

        assert found == {book.id: book for book in books}

    async def test_popular_books_of_an_empty_catalog(self, book_catalog: BookCatalog) -> None:
        assert await book_catalog.popular_book_ids(10) == []

    async def test_popular_books_by_ratings_count_ties_by_lower_id(self, book_catalog: BookCatalog) -> None:
        await book_catalog.put_many([counted(5, 10), counted(2, 30), counted(9, 20), counted(4, 30), counted(7, 0), counted(1, 20)])

        assert await book_catalog.popular_book_ids(10) == [2, 4, 1, 9, 5, 7]

    async def test_popular_books_up_to_the_limit(self, book_catalog: BookCatalog) -> None:
        await book_catalog.put_many(counted(book_id, book_id * 3 % 17) for book_id in range(1, 41))
        ranked = sorted(range(1, 41), key=lambda book_id: (-(book_id * 3 % 17), book_id))

        assert await book_catalog.popular_book_ids(5) == ranked[:5]
        assert await book_catalog.popular_book_ids(1) == ranked[:1]
        assert await book_catalog.popular_book_ids(0) == []
        assert await book_catalog.popular_book_ids(40) == ranked
        assert await book_catalog.popular_book_ids(1_000) == ranked  # a limit beyond the catalogue: all of it

    async def test_a_re_imported_count_reorders_the_popular_books(self, book_catalog: BookCatalog) -> None:
        await book_catalog.put_many([counted(1, 100), counted(2, 50), counted(3, 10)])
        assert await book_catalog.popular_book_ids(3) == [1, 2, 3]

        await book_catalog.put_many([counted(3, 500), counted(1, 20)])

        assert await book_catalog.popular_book_ids(3) == [3, 2, 1]
        assert await book_catalog.popular_book_ids(2) == [3, 2]
