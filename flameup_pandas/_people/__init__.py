"""_people"""
